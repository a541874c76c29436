# The staging environment's settings. Checked offline against the rules in
# ../../modules/conventions by scripts/check-terraform.sh (terraform plan of that module with
# this file), so a bad CIDR or pool size fails in CI before any apply.
environment               = "staging"
region                    = "fra1"
kubernetes_version_prefix = "1.33."
ha                        = false

network = {
  vpc_ip_range   = "10.10.0.0/20"
  cluster_subnet = "10.20.0.0/16"
  service_subnet = "10.21.0.0/20"
}

node_pools = {
  infra = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 3 }
  apps  = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 4 }
}

maintenance_window = {
  day        = "saturday"
  start_time = "03:00"
}

registry = { create = true, tier = "basic" }
