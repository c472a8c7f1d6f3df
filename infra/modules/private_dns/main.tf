# The private DNS zones the private endpoints register in, linked to hub and spoke.
resource "azurerm_private_dns_zone" "this" {
  for_each = var.zones

  name                = each.value
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

locals {
  links = merge([
    for zone in var.zones : {
      for key, vnet_id in var.virtual_network_ids : "${zone}|${key}" => { zone = zone, key = key, vnet_id = vnet_id }
    }
  ]...)
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each = local.links

  name                  = "link-${each.value.key}"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this[each.value.zone].name
  virtual_network_id    = each.value.vnet_id
  registration_enabled  = false
  tags                  = var.tags
}
