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

variable "retention_in_days" {
  type        = number
  description = "How long logs are kept."
  validation {
    condition     = var.retention_in_days >= 30 && var.retention_in_days <= 730
    error_message = "retention_in_days must be between 30 and 730."
  }
}
