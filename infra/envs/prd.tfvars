subscription_id = "00000000-0000-0000-0000-000000000000"
tenant_id       = "00000000-0000-0000-0000-000000000000"
environment     = "prd"
location        = "uksouth"

hub_address_space   = "10.11.0.0/16"
spoke_address_space = "10.30.0.0/16"

kubernetes_version         = "1.34"
aks_sku_tier               = "Standard"
aks_admin_group_object_ids = ["00000000-0000-0000-0000-000000000000"]

node_pools = {
  system_vm_size    = "Standard_D4ds_v5"
  general_vm_size   = "Standard_D4ds_v5"
  general_min_count = 3
  general_max_count = 9
  spot_vm_size      = "Standard_D8ds_v5"
  spot_max_count    = 10
}

postgres = {
  sku_name              = "GP_Standard_D2ds_v5"
  storage_mb            = 131072
  backup_retention_days = 35
  geo_redundant_backup  = true
  high_availability     = true
}

storage_replication_type     = "RAGZRS"
log_retention_days           = 90
acr_georeplication_locations = ["ukwest"]
ci_principal_id              = "00000000-0000-0000-0000-000000000000"

api_host     = "api.stockdata.example.org"
cors_origins = ["https://app.stockdata.example.org"]
acme_email   = "platform@stockdata.example.org"

tags = { owner = "platform", cost-center = "stockdata" }
