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

variable "zones" {
  type        = set(string)
  description = "Private DNS zones to create, e.g. privatelink.blob.core.windows.net."
  validation {
    condition     = alltrue([for z in var.zones : can(regex("^[a-z0-9.-]+$", z))])
    error_message = "Zone names are lower-case DNS names."
  }
}

variable "virtual_network_ids" {
  type        = map(string)
  description = "Virtual networks (by a stable key) linked to every zone, so hub and spoke resolve the private endpoints."
  validation {
    condition     = alltrue([for id in values(var.virtual_network_ids) : can(regex("/virtualNetworks/[^/]+$", id))])
    error_message = "virtual_network_ids values must be virtual network resource IDs."
  }
}
