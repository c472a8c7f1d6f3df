# The one root: every environment is this configuration plus envs/<env>.tfvars, with its state
# in its own blob (envs/<env>.backend.hcl): `terraform init -backend-config=envs/dev.backend.hcl`.
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
    random = {
      source  = "hashicorp/random"
      version = ">= 3.7, < 4.0"
    }
  }

  # Partial configuration: the storage account, container and key come from
  # envs/<env>.backend.hcl. Entra ID auth (use_azuread_auth) and OIDC from CI.
  backend "azurerm" {}
}
