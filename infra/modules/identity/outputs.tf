output "client_id" {
  description = "Client ID, for the ServiceAccount annotation azure.workload.identity/client-id."
  value       = azurerm_user_assigned_identity.this.client_id
}

output "principal_id" {
  description = "Object ID of the identity."
  value       = azurerm_user_assigned_identity.this.principal_id
}
