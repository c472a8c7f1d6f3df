variable "name" {
  type        = string
  description = "Name of the main resource."
  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.name))
    error_message = "Registry names are 5-50 letters and digits."
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

variable "private_dns_zone_id" {
  type        = string
  description = "The privatelink.azurecr.io zone."
  validation {
    condition     = can(regex("privatelink\\.azurecr\\.io$", var.private_dns_zone_id))
    error_message = "private_dns_zone_id must be the privatelink.azurecr.io zone."
  }
}

variable "georeplication_locations" {
  type        = list(string)
  description = "Extra regions the registry replicates to (empty for none)."
  validation {
    condition     = alltrue([for l in var.georeplication_locations : can(regex("^[a-z0-9]+$", l))])
    error_message = "Regions are lower-case names such as ukwest."
  }
}

variable "pull_principal_ids" {
  type        = map(string)
  description = "Principals (by a stable key) that pull images, e.g. the AKS kubelet identity."
  validation {
    condition     = length(var.pull_principal_ids) > 0
    error_message = "At least one principal must be able to pull."
  }
}

variable "push_principal_ids" {
  type        = map(string)
  description = "Principals (by a stable key) that push images, e.g. the CI identity."
  validation {
    condition     = length(var.push_principal_ids) <= 5
    error_message = "Keep the pushers to at most 5 principals."
  }
}
