# Derived names, tags and the node-pool placement contract (labels + taint). Kept as data so the
# DOKS module, the Flux bootstrap (toleration key) and the Flux manifests agree on one definition.
locals {
  name = "${var.project}-${var.environment}"

  # DigitalOcean tags allow letters, digits, '-', '_' and ':'.
  tags = ["${var.project}", "env:${var.environment}", "managed-by:terraform"]

  # Fixed keys (not derived from var.project): the Flux manifests and the agent chart match them.
  # The taint that keeps everything but infrastructure off the infra pool. Only NoSchedule keeps
  # workloads out for real (the earlier showcase used PreferNoSchedule, which is a hint).
  infra_taint = {
    key    = "outrigger.io/dedicated"
    value  = "infra"
    effect = "NoSchedule"
  }

  # DOKS labels every node with doks.digitalocean.com/node-pool=<pool name>; the Flux manifests
  # select on that label, so the pool names below are part of the contract.
  pools = {
    infra = {
      name      = "infra"
      size      = var.node_pools.infra.size
      min_nodes = var.node_pools.infra.min_nodes
      max_nodes = var.node_pools.infra.max_nodes
      labels    = { "outrigger.io/pool" = "infra", "outrigger.io/environment" = var.environment }
      taints    = [local.infra_taint]
      tags      = concat(local.tags, ["pool:infra"])
    }
    apps = {
      name      = "apps"
      size      = var.node_pools.apps.size
      min_nodes = var.node_pools.apps.min_nodes
      max_nodes = var.node_pools.apps.max_nodes
      labels    = { "outrigger.io/pool" = "apps", "outrigger.io/environment" = var.environment }
      taints    = []
      tags      = concat(local.tags, ["pool:apps"])
    }
  }
}
