output "id" {
  description = "Storage account ID."
  value       = azurerm_storage_account.this.id
}

output "name" {
  description = "Storage account name."
  value       = azurerm_storage_account.this.name
}

output "lake_container_id" {
  description = "Resource manager ID of the lake filesystem (scope for lake role assignments)."
  value       = azurerm_storage_container.lake.id
}

output "queue_ids" {
  description = "Resource manager IDs of the job queue and its poison queue, by name."
  value       = { for k, q in azapi_resource.queue : k => q.id }
}
