# The production environment's settings. Checked offline against the rules in
# ../../modules/conventions by scripts/check-terraform.sh (terraform plan of that module with
# this file), so a bad CIDR or pool size fails in CI before any apply.
environment               = "production"
region                    = "fra1"
kubernetes_version_prefix = "1.33."
ha                        = true

network = {
  vpc_ip_range   = "10.30.0.0/20"
  cluster_subnet = "10.40.0.0/16"
  service_subnet = "10.41.0.0/20"
}

node_pools = {
  infra = { size = "s-4vcpu-8gb", min_nodes = 2, max_nodes = 4 }
  apps  = { size = "s-4vcpu-8gb", min_nodes = 2, max_nodes = 10 }
}

maintenance_window = {
  day        = "sunday"
  start_time = "03:00"
}

registry = { create = false } # created by the staging root (one registry per account)
