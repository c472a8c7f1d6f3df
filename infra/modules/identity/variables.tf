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

variable "oidc_issuer_url" {
  type        = string
  description = "The AKS OIDC issuer URL that signs the ServiceAccount tokens."
  validation {
    condition     = can(regex("^https://", var.oidc_issuer_url))
    error_message = "oidc_issuer_url must be an https URL."
  }
}

variable "federated_service_accounts" {
  type        = map(string)
  description = "Federated credentials by name: each value is '<namespace>:<serviceaccount>'."
  validation {
    condition     = length(var.federated_service_accounts) > 0 && alltrue([for v in values(var.federated_service_accounts) : can(regex("^[a-z0-9-]+:[a-z0-9-]+$", v))])
    error_message = "Give at least one '<namespace>:<serviceaccount>' subject."
  }
}

variable "role_assignments" {
  type = map(object({
    scope = string
    role  = string
  }))
  description = "Role assignments by a stable key: the scope (a resource ID) and the built-in role name."
  validation {
    condition     = alltrue([for r in values(var.role_assignments) : startswith(r.scope, "/subscriptions/") && !contains(["Owner", "Contributor", "User Access Administrator"], r.role)])
    error_message = "Scopes must be resource IDs, and broad roles (Owner, Contributor, User Access Administrator) are refused."
  }
}
