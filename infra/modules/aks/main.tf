# Private AKS: API server on a private endpoint only, Entra ID + Azure RBAC (no local
# accounts), OIDC issuer and workload identity, Azure CNI with Azure network policies,
# KEDA and the Key Vault CSI driver as managed add-ons, Flux as the GitOps extension.
# Pools: a system pool for critical add-ons only, an on-demand pool for the API and jobs,
# and a spot pool (scales to zero) for the ingestion workers.
resource "azurerm_kubernetes_cluster" "this" {
  # checkov:skip=CKV_AZURE_117: Node disks are ephemeral with encryption at host (platform keys); a disk encryption set adds a customer key to rotate for disks that hold no data.
  name                              = var.name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  dns_prefix                        = var.name
  kubernetes_version                = var.kubernetes_version
  sku_tier                          = var.sku_tier
  private_cluster_enabled           = true
  private_dns_zone_id               = "System"
  oidc_issuer_enabled               = true
  workload_identity_enabled         = true
  local_account_disabled            = true
  role_based_access_control_enabled = true
  azure_policy_enabled              = true
  image_cleaner_enabled             = true
  image_cleaner_interval_hours      = 48
  automatic_upgrade_channel         = "patch"
  node_os_upgrade_channel           = "NodeImage"
  tags                              = var.tags

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    vnet_subnet_id               = var.nodes_subnet_id
    auto_scaling_enabled         = true
    min_count                    = 2
    max_count                    = 3
    max_pods                     = 50
    os_disk_type                 = "Ephemeral"
    host_encryption_enabled      = true
    only_critical_addons_enabled = true
    zones                        = var.zones
    temporary_name_for_rotation  = "systemtmp"

    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  azure_active_directory_role_based_access_control {
    tenant_id              = var.tenant_id
    azure_rbac_enabled     = true
    admin_group_object_ids = var.admin_group_object_ids
  }

  network_profile {
    network_plugin    = "azure"
    network_policy    = "azure"
    load_balancer_sku = "standard"
    outbound_type     = "loadBalancer"
    service_cidr      = var.service_cidr
    dns_service_ip    = cidrhost(var.service_cidr, 10)
  }

  oms_agent {
    log_analytics_workspace_id      = var.log_analytics_workspace_id
    msi_auth_for_monitoring_enabled = true
  }

  monitor_metrics {}

  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "2m"
  }

  workload_autoscaler_profile {
    keda_enabled = true
  }

  maintenance_window_auto_upgrade {
    frequency   = "Weekly"
    interval    = 1
    duration    = 4
    day_of_week = "Sunday"
    start_time  = "02:00"
    utc_offset  = "+00:00"
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "general" {
  name                    = "general"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.general_vm_size
  vnet_subnet_id          = var.nodes_subnet_id
  auto_scaling_enabled    = true
  min_count               = var.general_min_count
  max_count               = var.general_max_count
  max_pods                = 50
  os_disk_type            = "Ephemeral"
  host_encryption_enabled = true
  zones                   = var.zones
  mode                    = "User"
  tags                    = var.tags
}

# Spot nodes carry AKS's kubernetes.azure.com/scalesetpriority=spot:NoSchedule taint; only
# the worker Deployment tolerates it. An eviction gives 30 s: the worker releases its job.
resource "azurerm_kubernetes_cluster_node_pool" "spot" {
  name                    = "spot"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.spot_vm_size
  vnet_subnet_id          = var.nodes_subnet_id
  priority                = "Spot"
  eviction_policy         = "Delete"
  spot_max_price          = -1
  auto_scaling_enabled    = true
  min_count               = 0
  max_count               = var.spot_max_count
  max_pods                = 50
  os_disk_type            = "Ephemeral"
  host_encryption_enabled = true
  zones                   = var.zones
  mode                    = "User"
  node_labels             = { "stockdata.io/pool" = "spot" }
  tags                    = var.tags
}

resource "azurerm_kubernetes_cluster_extension" "flux" {
  name           = "flux"
  cluster_id     = azurerm_kubernetes_cluster.this.id
  extension_type = "microsoft.flux"
}
