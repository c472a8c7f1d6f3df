subscription_id = "00000000-0000-0000-0000-000000000000"
tenant_id       = "00000000-0000-0000-0000-000000000000"
environment     = "dev"
location        = "uksouth"

hub_address_space   = "10.10.0.0/16"
spoke_address_space = "10.20.0.0/16"

kubernetes_version         = "1.34"
aks_sku_tier               = "Standard"
aks_admin_group_object_ids = ["00000000-0000-0000-0000-000000000000"]

node_pools = {
  system_vm_size    = "Standard_D2ds_v5"
  general_vm_size   = "Standard_D4ds_v5"
  general_min_count = 1
  general_max_count = 3
  spot_vm_size      = "Standard_D4ds_v5"
  spot_max_count    = 3
}

postgres = {
  sku_name              = "B_Standard_B2s"
  storage_mb            = 32768
  backup_retention_days = 7
  geo_redundant_backup  = false
  high_availability     = false
}

storage_replication_type     = "ZRS"
log_retention_days           = 30
acr_georeplication_locations = []
ci_principal_id              = "00000000-0000-0000-0000-000000000000"

api_host     = "api.dev.stockdata.example.org"
cors_origins = ["https://app.dev.stockdata.example.org"]
acme_email   = "platform@stockdata.example.org"

tags = { owner = "platform", cost-center = "stockdata" }
