variable "name" {
  type        = string
  description = "Name of the main resource."
  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.name))
    error_message = "Key Vault names are 3-24 characters: letters, digits, inner hyphens."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. uksouth."
  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location must be a region name such as uksouth (lower case, no spaces)."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Resource group that holds the resources."
  validation {
    condition     = length(var.resource_group_name) > 0 && length(var.resource_group_name) <= 90
    error_message = "resource_group_name must be 1-90 characters."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags applied to every resource."
  validation {
    condition     = length(var.tags) <= 50
    error_message = "Azure allows at most 50 tags per resource."
  }
}

variable "private_endpoint_subnet_id" {
  type        = string
  description = "Subnet in which the private endpoints are created."
  validation {
    condition     = can(regex("/subnets/[^/]+$", var.private_endpoint_subnet_id))
    error_message = "private_endpoint_subnet_id must be a subnet resource ID."
  }
}

variable "tenant_id" {
  type        = string
  description = "Entra ID tenant of the vault."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.tenant_id))
    error_message = "tenant_id must be a GUID."
  }
}

variable "private_dns_zone_id" {
  type        = string
  description = "The privatelink.vaultcore.azure.net zone."
  validation {
    condition     = can(regex("privatelink\\.vaultcore\\.azure\\.net$", var.private_dns_zone_id))
    error_message = "private_dns_zone_id must be the privatelink.vaultcore.azure.net zone."
  }
}
