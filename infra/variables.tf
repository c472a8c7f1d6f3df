variable "subscription_id" {
  type        = string
  description = "Subscription that hosts the environment."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id must be a GUID."
  }
}

variable "tenant_id" {
  type        = string
  description = "Entra ID tenant."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.tenant_id))
    error_message = "tenant_id must be a GUID."
  }
}

variable "environment" {
  type        = string
  description = "Environment name; part of every resource name and of the Flux state branch (state.<environment>)."
  validation {
    condition     = contains(["dev", "prd"], var.environment)
    error_message = "environment must be dev or prd."
  }
}

variable "location" {
  type        = string
  description = "Azure region."
  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location must be a region name such as uksouth."
  }
}

variable "hub_address_space" {
  type        = string
  description = "CIDR of the hub VNet (/16): shared services and the self-hosted CI runners."
  validation {
    condition     = can(cidrhost(var.hub_address_space, 0)) && endswith(var.hub_address_space, "/16")
    error_message = "hub_address_space must be a /16 CIDR."
  }
}

variable "spoke_address_space" {
  type        = string
  description = "CIDR of the spoke VNet (/16): AKS nodes and pods, private endpoints, Postgres."
  validation {
    condition     = can(cidrhost(var.spoke_address_space, 0)) && endswith(var.spoke_address_space, "/16")
    error_message = "spoke_address_space must be a /16 CIDR."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "AKS Kubernetes minor version."
  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34."
  }
}

variable "aks_sku_tier" {
  type        = string
  description = "AKS control plane tier."
  validation {
    condition     = contains(["Standard", "Premium"], var.aks_sku_tier)
    error_message = "aks_sku_tier must be Standard or Premium."
  }
}

variable "aks_admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups with cluster-admin (Azure RBAC)."
  validation {
    condition     = length(var.aks_admin_group_object_ids) > 0 && alltrue([for g in var.aks_admin_group_object_ids : can(regex("^[0-9a-f-]{36}$", g))])
    error_message = "Give at least one group object ID (GUID)."
  }
}

variable "node_pools" {
  type = object({
    system_vm_size    = string
    general_vm_size   = string
    general_min_count = number
    general_max_count = number
    spot_vm_size      = string
    spot_max_count    = number
  })
  description = "Sizes and limits of the system, on-demand (general) and spot pools."
  validation {
    condition     = var.node_pools.general_min_count <= var.node_pools.general_max_count && var.node_pools.spot_max_count >= 1
    error_message = "general_min_count must not exceed general_max_count, and spot_max_count must be at least 1."
  }
}

variable "postgres" {
  type = object({
    sku_name              = string
    storage_mb            = number
    backup_retention_days = number
    geo_redundant_backup  = bool
    high_availability     = bool
  })
  description = "Catalog database size, backups and availability."
  validation {
    condition     = var.postgres.backup_retention_days >= 7 && var.postgres.backup_retention_days <= 35
    error_message = "postgres.backup_retention_days must be between 7 and 35."
  }
}

variable "storage_replication_type" {
  type        = string
  description = "Redundancy of the lake storage account."
  validation {
    condition     = contains(["ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be ZRS or geo-redundant."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Log Analytics retention."
  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "acr_georeplication_locations" {
  type        = list(string)
  description = "Extra regions for the container registry."
  validation {
    condition     = alltrue([for l in var.acr_georeplication_locations : can(regex("^[a-z0-9]+$", l))])
    error_message = "Regions are lower-case names such as ukwest."
  }
}

variable "ci_principal_id" {
  type        = string
  description = "Object ID of the CI service principal (GitHub OIDC) that pushes images."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.ci_principal_id))
    error_message = "ci_principal_id must be a GUID."
  }
}

variable "api_host" {
  type        = string
  description = "Public host name of the API (the Ingress host)."
  validation {
    condition     = can(regex("^[a-z0-9.-]+\\.[a-z]{2,}$", var.api_host))
    error_message = "api_host must be a DNS name."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource (environment and workload are added)."
  validation {
    condition     = length(var.tags) <= 48
    error_message = "At most 48 tags (two are added)."
  }
}

variable "cors_origins" {
  type        = list(string)
  description = "Browser origins allowed to call the API."
  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^https://", o))])
    error_message = "CORS origins must be https URLs."
  }
}

variable "acme_email" {
  type        = string
  description = "Contact address for the Let's Encrypt account (certificate expiry notices)."
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", var.acme_email))
    error_message = "acme_email must be an e-mail address."
  }
}
