# A DOKS cluster inside its own VPC with two autoscaled node pools:
#   infra (the cluster's default pool, tainted NoSchedule) for Flux, cert-manager, monitoring, Loki;
#   apps  (digitalocean_kubernetes_node_pool, untainted) for the workloads.
# The Outrigger agent DaemonSet tolerates everything and runs on both.

module "conventions" {
  source = "../conventions"

  project                   = var.project
  environment               = var.environment
  region                    = var.region
  kubernetes_version_prefix = var.kubernetes_version_prefix
  network                   = var.network
  node_pools                = var.node_pools
}

locals {
  tags  = distinct(concat(module.conventions.tags, var.extra_tags))
  pools = module.conventions.pools
}

resource "digitalocean_vpc" "this" {
  name        = module.conventions.vpc_name
  region      = var.region
  description = "Outrigger ${var.environment}: DOKS nodes and load balancers"
  ip_range    = module.conventions.network.vpc_ip_range
}

data "digitalocean_kubernetes_versions" "this" {
  version_prefix = module.conventions.kubernetes_version_prefix
}

resource "digitalocean_container_registry" "this" {
  count = var.registry.create ? 1 : 0

  name                   = module.conventions.registry_name
  subscription_tier_slug = var.registry.tier
  region                 = var.region
}

data "digitalocean_container_registry" "this" {
  count = var.registry.create ? 0 : 1

  name = module.conventions.registry_name
}

resource "digitalocean_kubernetes_cluster" "this" {
  name     = module.conventions.name
  region   = var.region
  version  = data.digitalocean_kubernetes_versions.this.latest_version
  vpc_uuid = digitalocean_vpc.this.id

  cluster_subnet = module.conventions.network.cluster_subnet
  service_subnet = module.conventions.network.service_subnet

  ha            = var.ha
  auto_upgrade  = true # patch releases inside the maintenance window; without it the window does nothing
  surge_upgrade = true # new nodes come up before old ones drain

  # The registry must exist before the integration is switched on.
  registry_integration = true

  maintenance_policy {
    day        = var.maintenance_window.day
    start_time = var.maintenance_window.start_time
  }

  # Scale down a node once it is under half used for 10 minutes; add capacity where least is wasted.
  cluster_autoscaler_configuration {
    scale_down_utilization_threshold = 0.5
    scale_down_unneeded_time         = "10m"
    expanders                        = ["least-waste"]
  }

  dynamic "control_plane_firewall" {
    for_each = length(var.control_plane_allowed_addresses) > 0 ? [1] : []
    content {
      enabled           = true
      allowed_addresses = var.control_plane_allowed_addresses
    }
  }

  tags = local.tags

  node_pool {
    name       = local.pools.infra.name
    size       = local.pools.infra.size
    auto_scale = true
    min_nodes  = local.pools.infra.min_nodes
    max_nodes  = local.pools.infra.max_nodes
    labels     = local.pools.infra.labels
    # terraform:default-node-pool lets `terraform import` find the default pool later.
    tags = concat(local.pools.infra.tags, ["terraform:default-node-pool"])

    dynamic "taint" {
      for_each = local.pools.infra.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }
  }

  depends_on = [digitalocean_container_registry.this]
}

resource "digitalocean_kubernetes_node_pool" "apps" {
  cluster_id = digitalocean_kubernetes_cluster.this.id

  name       = local.pools.apps.name
  size       = local.pools.apps.size
  auto_scale = true
  min_nodes  = local.pools.apps.min_nodes
  max_nodes  = local.pools.apps.max_nodes
  labels     = local.pools.apps.labels
  tags       = local.pools.apps.tags

  dynamic "taint" {
    for_each = local.pools.apps.taints
    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }
}

resource "digitalocean_project" "this" {
  name        = module.conventions.name
  description = "Outrigger ${var.environment}: DOKS cluster, node pools and load balancers."
  purpose     = "Service or API"
  environment = module.conventions.project_environment
  resources   = [digitalocean_kubernetes_cluster.this.urn]
}
