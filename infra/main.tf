locals {
  name = "stockdata-${var.environment}"
  # Names without hyphens for the services that refuse them.
  compact = "stockdata${var.environment}"
  tags    = merge(var.tags, { environment = var.environment, workload = "stockdata" })

  spoke_subnets = {
    private-endpoints = { address_prefix = cidrsubnet(var.spoke_address_space, 8, 2) }
    postgres          = { address_prefix = cidrsubnet(var.spoke_address_space, 8, 3), delegation = "Microsoft.DBforPostgreSQL/flexibleServers" }
    aks-nodes         = { address_prefix = cidrsubnet(var.spoke_address_space, 6, 1) }
  }

  postgres_zone = "${local.name}.private.postgres.database.azure.com"
  dns_zones = [
    "privatelink.blob.core.windows.net",
    "privatelink.dfs.core.windows.net",
    "privatelink.queue.core.windows.net",
    "privatelink.vaultcore.azure.net",
    "privatelink.azurecr.io",
    local.postgres_zone,
  ]
  queue_name = "eod-jobs"
}

resource "azurerm_resource_group" "main" {
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

# ---- network: hub (CI runners, shared services) and spoke (the workload), peered both ways

module "hub" {
  source              = "./modules/vnet"
  name                = "vnet-${local.name}-hub"
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  address_space       = [var.hub_address_space]
  subnets = {
    runners = { address_prefix = cidrsubnet(var.hub_address_space, 8, 1) }
    shared  = { address_prefix = cidrsubnet(var.hub_address_space, 8, 2) }
  }
  tags = local.tags
}

module "spoke" {
  source              = "./modules/vnet"
  name                = "vnet-${local.name}-spoke"
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  address_space       = [var.spoke_address_space]
  subnets             = local.spoke_subnets
  tags                = local.tags
}

resource "azurerm_virtual_network_peering" "hub_to_spoke" {
  name                      = "hub-to-spoke"
  resource_group_name       = azurerm_resource_group.main.name
  virtual_network_name      = module.hub.name
  remote_virtual_network_id = module.spoke.id
  allow_forwarded_traffic   = true
}

resource "azurerm_virtual_network_peering" "spoke_to_hub" {
  name                      = "spoke-to-hub"
  resource_group_name       = azurerm_resource_group.main.name
  virtual_network_name      = module.spoke.name
  remote_virtual_network_id = module.hub.id
  allow_forwarded_traffic   = true
}

module "dns" {
  source              = "./modules/private_dns"
  resource_group_name = azurerm_resource_group.main.name
  zones               = toset(local.dns_zones)
  virtual_network_ids = { hub = module.hub.id, spoke = module.spoke.id }
  tags                = local.tags
}

# ---- platform

module "logs" {
  source              = "./modules/log_analytics"
  name                = "log-${local.name}"
  location            = var.location
  resource_group_name = azurerm_resource_group.main.name
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

module "aks" {
  source                     = "./modules/aks"
  name                       = "aks-${local.name}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  tenant_id                  = var.tenant_id
  kubernetes_version         = var.kubernetes_version
  sku_tier                   = var.aks_sku_tier
  admin_group_object_ids     = var.aks_admin_group_object_ids
  nodes_subnet_id            = module.spoke.subnet_ids["aks-nodes"]
  service_cidr               = "172.16.0.0/16"
  zones                      = ["1", "2", "3"]
  system_vm_size             = var.node_pools.system_vm_size
  general_vm_size            = var.node_pools.general_vm_size
  general_min_count          = var.node_pools.general_min_count
  general_max_count          = var.node_pools.general_max_count
  spot_vm_size               = var.node_pools.spot_vm_size
  spot_max_count             = var.node_pools.spot_max_count
  log_analytics_workspace_id = module.logs.id
  tags                       = local.tags
}

module "acr" {
  source                     = "./modules/acr"
  name                       = "cr${local.compact}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  private_endpoint_subnet_id = module.spoke.subnet_ids["private-endpoints"]
  private_dns_zone_id        = module.dns.zone_ids["privatelink.azurecr.io"]
  georeplication_locations   = var.acr_georeplication_locations
  pull_principal_ids         = { aks_kubelet = module.aks.kubelet_object_id }
  push_principal_ids         = { ci = var.ci_principal_id }
  tags                       = local.tags
}

# ---- data

module "lake" {
  source                     = "./modules/storage"
  name                       = "st${local.compact}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  replication_type           = var.storage_replication_type
  soft_delete_days           = 14
  queue_name                 = local.queue_name
  log_analytics_workspace_id = module.logs.id
  private_endpoint_subnet_id = module.spoke.subnet_ids["private-endpoints"]
  private_dns_zone_ids = {
    blob  = module.dns.zone_ids["privatelink.blob.core.windows.net"]
    dfs   = module.dns.zone_ids["privatelink.dfs.core.windows.net"]
    queue = module.dns.zone_ids["privatelink.queue.core.windows.net"]
  }
  tags = local.tags
}

module "catalog_db" {
  source                       = "./modules/postgres"
  name                         = "psql-${local.name}"
  location                     = var.location
  resource_group_name          = azurerm_resource_group.main.name
  tenant_id                    = var.tenant_id
  sku_name                     = var.postgres.sku_name
  storage_mb                   = var.postgres.storage_mb
  backup_retention_days        = var.postgres.backup_retention_days
  geo_redundant_backup_enabled = var.postgres.geo_redundant_backup
  high_availability            = var.postgres.high_availability
  delegated_subnet_id          = module.spoke.subnet_ids["postgres"]
  private_dns_zone_id          = module.dns.zone_ids[local.postgres_zone]
  tags                         = local.tags
}

module "vault" {
  source                     = "./modules/keyvault"
  name                       = "kv-${local.name}"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  tenant_id                  = var.tenant_id
  private_endpoint_subnet_id = module.spoke.subnet_ids["private-endpoints"]
  private_dns_zone_id        = module.dns.zone_ids["privatelink.vaultcore.azure.net"]
  tags                       = local.tags
}

# ---- identities: one per role, federated with its ServiceAccounts, least privilege

locals {
  job_queue_id    = module.lake.queue_ids[local.queue_name]
  poison_queue_id = module.lake.queue_ids["${local.queue_name}-poison"]
  kv_reader       = { scope = module.vault.id, role = "Key Vault Secrets User" }
}

module "id_api" {
  source                     = "./modules/identity"
  name                       = "id-${local.name}-api"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  oidc_issuer_url            = module.aks.oidc_issuer_url
  federated_service_accounts = { api = "stockdata-api:stockdata-api", migrate = "stockdata-api:stockdata-migrate" }
  role_assignments = {
    lake_read = { scope = module.lake.lake_container_id, role = "Storage Blob Data Reader" }
    secrets   = local.kv_reader
  }
  tags = local.tags
}

module "id_worker" {
  source                     = "./modules/identity"
  name                       = "id-${local.name}-worker"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  oidc_issuer_url            = module.aks.oidc_issuer_url
  federated_service_accounts = { worker = "stockdata-ingest:stockdata-worker", maintenance = "stockdata-ingest:stockdata-maintenance" }
  role_assignments = {
    lake_write   = { scope = module.lake.lake_container_id, role = "Storage Blob Data Contributor" }
    job_queue    = { scope = local.job_queue_id, role = "Storage Queue Data Contributor" }
    poison_queue = { scope = local.poison_queue_id, role = "Storage Queue Data Contributor" }
    secrets      = local.kv_reader
  }
  tags = local.tags
}

module "id_controller" {
  source                     = "./modules/identity"
  name                       = "id-${local.name}-controller"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  oidc_issuer_url            = module.aks.oidc_issuer_url
  federated_service_accounts = { controller = "stockdata-ingest:stockdata-controller" }
  role_assignments = {
    job_queue = { scope = local.job_queue_id, role = "Storage Queue Data Message Sender" }
    secrets   = local.kv_reader
  }
  tags = local.tags
}

# KEDA's operator (the AKS add-on runs it as kube-system/keda-operator) only reads queue length.
module "id_keda" {
  source                     = "./modules/identity"
  name                       = "id-${local.name}-keda"
  location                   = var.location
  resource_group_name        = azurerm_resource_group.main.name
  oidc_issuer_url            = module.aks.oidc_issuer_url
  federated_service_accounts = { keda = "kube-system:keda-operator" }
  role_assignments = {
    job_queue = { scope = local.job_queue_id, role = "Storage Queue Data Reader" }
  }
  tags = local.tags
}
