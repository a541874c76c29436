# The production environment: one DOKS cluster in its own VPC. Address plans of the two environments do
# not overlap either, so the VPCs can be peered later.
module "doks" {
  source = "../../modules/doks"

  environment               = "production"
  region                    = var.region
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

  control_plane_allowed_addresses = var.control_plane_allowed_addresses
  registry                        = { create = false } # created by the staging root (one registry per account)
}
