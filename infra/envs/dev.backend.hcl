# Remote state for dev (created once by hand, see docs/deploy.md "Remote state").
resource_group_name  = "rg-stockdata-tfstate"
storage_account_name = "ststockdatatfstate"
container_name       = "tfstate"
key                  = "stockdata-dev.tfstate"
use_azuread_auth     = true
