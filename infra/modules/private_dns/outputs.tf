output "zone_ids" {
  description = "Private DNS zone IDs by zone name."
  value       = { for k, z in azurerm_private_dns_zone.this : k => z.id }
}
