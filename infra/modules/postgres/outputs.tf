output "id" {
  description = "Server ID."
  value       = azurerm_postgresql_flexible_server.this.id
}

output "fqdn" {
  description = "Private host name of the server."
  value       = azurerm_postgresql_flexible_server.this.fqdn
}

output "database_url" {
  description = "STOCKDATA_DATABASE_URL for the catalog (admin login; store it in Key Vault, see docs/deploy.md)."
  sensitive   = true
  value       = "postgresql://stockdata_admin:${random_password.admin.result}@${azurerm_postgresql_flexible_server.this.fqdn}:5432/stockdata?sslmode=require"
}
