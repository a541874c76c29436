# The staging environment: one DOKS cluster in its own VPC. Address plans of the two environments do
# not overlap either, so the VPCs can be peered later.
module "doks" {
  source = "../../modules/doks"

  environment               = "staging"
  region                    = var.region
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

  control_plane_allowed_addresses = var.control_plane_allowed_addresses
  registry                        = { create = true, tier = "basic" }
}
