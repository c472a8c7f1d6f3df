output "id" {
  description = "Registry ID."
  value       = azurerm_container_registry.this.id
}

output "login_server" {
  description = "Registry host name, e.g. crstockdatadev.azurecr.io."
  value       = azurerm_container_registry.this.login_server
}
