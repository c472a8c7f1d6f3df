variable "name" {
  type        = string
  description = "Name of the main resource."
  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{1,61}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 3-63 characters: letters, digits and inner hyphens."
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

variable "tenant_id" {
  type        = string
  description = "Entra ID tenant for database authentication."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.tenant_id))
    error_message = "tenant_id must be a GUID."
  }
}

variable "sku_name" {
  type        = string
  description = "Compute tier and size, e.g. B_Standard_B2s or GP_Standard_D2ds_v5."
  validation {
    condition     = can(regex("^(B|GP|MO)_Standard_", var.sku_name))
    error_message = "sku_name must be a Burstable (B_), General Purpose (GP_) or Memory Optimized (MO_) SKU."
  }
}

variable "storage_mb" {
  type        = number
  description = "Initial storage in MB (grows automatically)."
  validation {
    condition     = contains([32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4193280, 4194304, 8388608, 16777216, 33553408], var.storage_mb)
    error_message = "storage_mb must be one of the sizes Flexible Server offers (32768 ... 33553408)."
  }
}

variable "backup_retention_days" {
  type        = number
  description = "Days of point-in-time restore."
  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "geo_redundant_backup_enabled" {
  type        = bool
  description = "Copy backups to the paired region (cannot be changed after creation)."
  default     = true
  validation {
    condition     = var.geo_redundant_backup_enabled == true || var.geo_redundant_backup_enabled == false
    error_message = "geo_redundant_backup_enabled must be true or false."
  }
}

variable "high_availability" {
  type        = bool
  description = "Run a zone-redundant standby."
  validation {
    condition     = var.high_availability == true || var.high_availability == false
    error_message = "high_availability must be true or false."
  }
}

variable "delegated_subnet_id" {
  type        = string
  description = "Subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  validation {
    condition     = can(regex("/subnets/[^/]+$", var.delegated_subnet_id))
    error_message = "delegated_subnet_id must be a subnet resource ID."
  }
}

variable "private_dns_zone_id" {
  type        = string
  description = "Private DNS zone ending in .postgres.database.azure.com."
  validation {
    condition     = can(regex("postgres\\.database\\.azure\\.com$", var.private_dns_zone_id))
    error_message = "private_dns_zone_id must be a *.postgres.database.azure.com private zone."
  }
}
