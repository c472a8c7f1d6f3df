output "resource_group_name" {
  description = "Resource group of the environment."
  value       = azurerm_resource_group.main.name
}

output "aks_name" {
  description = "AKS cluster name (az aks command invoke -g <rg> -n <name>)."
  value       = module.aks.name
}

output "acr_login_server" {
  description = "Registry host; images are <login_server>/stockdata."
  value       = module.acr.login_server
}

output "key_vault_name" {
  description = "Key Vault holding the role secrets."
  value       = module.vault.name
}

output "database_url" {
  description = "Catalog URL to store as the database-url secret (docs/deploy.md)."
  sensitive   = true
  value       = module.catalog_db.database_url
}

# Everything k8s/overlays/<env>/cluster/cluster.env needs:
#   terraform output -raw cluster_env > k8s/overlays/<env>/cluster/cluster.env
output "cluster_env" {
  description = "KEY=VALUE lines for the Kustomize overlay of this environment."
  value = join("\n", [
    "TENANT_ID=${var.tenant_id}",
    "API_CLIENT_ID=${module.id_api.client_id}",
    "WORKER_CLIENT_ID=${module.id_worker.client_id}",
    "CONTROLLER_CLIENT_ID=${module.id_controller.client_id}",
    "KEDA_CLIENT_ID=${module.id_keda.client_id}",
    "KEYVAULT_NAME=${module.vault.name}",
    "STORAGE_ACCOUNT=${module.lake.name}",
    "LAKE_URI=abfss://lake@${module.lake.name}.dfs.core.windows.net/",
    "QUEUE_ACCOUNT_URL=https://${module.lake.name}.queue.core.windows.net",
    "JWT_JWKS_URL=https://login.microsoftonline.com/${var.tenant_id}/discovery/v2.0/keys",
    "JWT_AUDIENCE=api://stockdata-${var.environment}",
    "JWT_ISSUER=https://login.microsoftonline.com/${var.tenant_id}/v2.0",
    "CORS_ORIGINS=${join(",", var.cors_origins)}",
    "API_HOST=${var.api_host}",
    "ACME_EMAIL=${var.acme_email}",
    "POSTGRES_SUBNET_CIDR=${local.spoke_subnets.postgres.address_prefix}",
    "",
  ])
}
