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
  description = "Entra ID tenant for cluster authentication."
  validation {
    condition     = can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.tenant_id))
    error_message = "tenant_id must be a GUID."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version (patches follow the automatic upgrade channel)."
  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.34."
  }
}

variable "sku_tier" {
  type        = string
  description = "Control plane tier: Standard carries the uptime SLA."
  validation {
    condition     = contains(["Standard", "Premium"], var.sku_tier)
    error_message = "sku_tier must be Standard or Premium."
  }
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups that are cluster admins."
  validation {
    condition     = length(var.admin_group_object_ids) > 0
    error_message = "At least one admin group is needed: local accounts are disabled."
  }
}

variable "nodes_subnet_id" {
  type        = string
  description = "Subnet for nodes and (Azure CNI) pods."
  validation {
    condition     = can(regex("/subnets/[^/]+$", var.nodes_subnet_id))
    error_message = "nodes_subnet_id must be a subnet resource ID."
  }
}

variable "service_cidr" {
  type        = string
  description = "Kubernetes service range; must not overlap any VNet."
  validation {
    condition     = can(cidrhost(var.service_cidr, 10))
    error_message = "service_cidr must be a valid CIDR."
  }
}

variable "zones" {
  type        = list(string)
  description = "Availability zones for every pool."
  validation {
    condition     = alltrue([for z in var.zones : contains(["1", "2", "3"], z)])
    error_message = "zones must be among 1, 2, 3."
  }
}

variable "system_vm_size" {
  type        = string
  description = "VM size of the system pool."
  validation {
    condition     = startswith(var.system_vm_size, "Standard_")
    error_message = "VM sizes start with Standard_."
  }
}

variable "general_vm_size" {
  type        = string
  description = "VM size of the on-demand pool (API, controller, migrations, maintenance)."
  validation {
    condition     = startswith(var.general_vm_size, "Standard_")
    error_message = "VM sizes start with Standard_."
  }
}

variable "general_min_count" {
  type        = number
  description = "Minimum nodes in the on-demand pool."
  validation {
    condition     = var.general_min_count >= 1 && var.general_min_count <= 100
    error_message = "general_min_count must be between 1 and 100."
  }
}

variable "general_max_count" {
  type        = number
  description = "Maximum nodes in the on-demand pool."
  validation {
    condition     = var.general_max_count >= 1 && var.general_max_count <= 100
    error_message = "general_max_count must be between 1 and 100."
  }
}

variable "spot_vm_size" {
  type        = string
  description = "VM size of the spot pool (ingestion workers)."
  validation {
    condition     = startswith(var.spot_vm_size, "Standard_")
    error_message = "VM sizes start with Standard_."
  }
}

variable "spot_max_count" {
  type        = number
  description = "Maximum nodes in the spot pool (it scales to zero)."
  validation {
    condition     = var.spot_max_count >= 1 && var.spot_max_count <= 100
    error_message = "spot_max_count must be between 1 and 100."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace for Container Insights."
  validation {
    condition     = can(regex("/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "log_analytics_workspace_id must be a Log Analytics workspace ID."
  }
}
