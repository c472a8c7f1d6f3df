variable "name" {
  type        = string
  description = "Name of the main resource."
  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.name))
    error_message = "Storage account names are 3-24 lower-case letters and digits."
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

variable "private_dns_zone_ids" {
  type        = map(string)
  description = "Private DNS zone ID per storage sub-resource that gets a private endpoint (blob, dfs, queue)."
  validation {
    condition     = length(setsubtract(keys(var.private_dns_zone_ids), ["blob", "dfs", "queue"])) == 0 && contains(keys(var.private_dns_zone_ids), "dfs")
    error_message = "Keys must be among blob, dfs, queue, and include dfs (the lake)."
  }
}

variable "replication_type" {
  type        = string
  description = "Redundancy of the lake account."
  validation {
    condition     = contains(["ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.replication_type)
    error_message = "replication_type must be ZRS or geo-redundant (GRS, RAGRS, GZRS, RAGZRS)."
  }
}

variable "soft_delete_days" {
  type        = number
  description = "Days a deleted file or container can be restored."
  validation {
    condition     = var.soft_delete_days >= 7 && var.soft_delete_days <= 365
    error_message = "soft_delete_days must be between 7 and 365."
  }
}

variable "queue_name" {
  type        = string
  description = "Name of the ingestion job queue; its poison queue is <name>-poison."
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{1,54}[a-z0-9])$", var.queue_name))
    error_message = "Queue names are 3-56 lower-case letters, digits and inner hyphens (room for -poison)."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace that receives the blob access logs."
  validation {
    condition     = can(regex("/workspaces/[^/]+$", var.log_analytics_workspace_id))
    error_message = "log_analytics_workspace_id must be a Log Analytics workspace ID."
  }
}
