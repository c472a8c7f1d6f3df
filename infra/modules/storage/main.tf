# The lake: an ADLS Gen2 account reachable only through private endpoints, Entra ID only
# (no shared keys, no SAS), with the lake filesystem and the job queue plus its poison queue.
resource "azurerm_storage_account" "this" {
  # checkov:skip=CKV2_AZURE_1: The lake holds public market data; Microsoft-managed keys with infrastructure (double) encryption, no customer key to rotate.
  name                              = var.name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.replication_type
  is_hns_enabled                    = true
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  public_network_access_enabled     = false
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  local_user_enabled                = false
  sftp_enabled                      = false
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false
  tags                              = var.tags

  identity {
    type = "SystemAssigned"
  }

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices", "Logging", "Metrics"]
  }

  blob_properties {
    delete_retention_policy {
      days = var.soft_delete_days
    }
    container_delete_retention_policy {
      days = var.soft_delete_days
    }
  }

  queue_properties {
    logging {
      delete                = true
      read                  = true
      write                 = true
      version               = "1.0"
      retention_policy_days = 30
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }
}

# Created through the management plane, so Terraform never needs the private data plane.
resource "azurerm_storage_container" "lake" {
  # checkov:skip=CKV2_AZURE_21: Storage Insights needs the account key, which is disabled; blob read/write/delete logs go to Log Analytics through azurerm_monitor_diagnostic_setting.blob.
  name                  = "lake"
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azapi_resource" "queue" {
  for_each = toset([var.queue_name, "${var.queue_name}-poison"])

  type      = "Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01"
  name      = each.value
  parent_id = "${azurerm_storage_account.this.id}/queueServices/default"
  body      = { properties = { metadata = {} } }
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "blob-to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

resource "azurerm_private_endpoint" "this" {
  for_each = var.private_dns_zone_ids

  name                = "pe-${var.name}-${each.key}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "psc-${var.name}-${each.key}"
    private_connection_resource_id = azurerm_storage_account.this.id
    subresource_names              = [each.key]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [each.value]
  }
}
