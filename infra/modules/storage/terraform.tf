# Provider requirements only; modules never configure providers.
terraform {
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.30, < 5.0"
    }
    azapi = {
      source  = "azure/azapi"
      version = ">= 2.4, < 3.0"
    }
  }
}
