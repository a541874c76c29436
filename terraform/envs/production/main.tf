# The production environment: one DOKS cluster in its own VPC (values in terraform.tfvars). The
# address plans of the two environments do not overlap either, so the VPCs can be peered later.
module "doks" {
  source = "../../modules/doks"

  environment                     = var.environment
  region                          = var.region
  kubernetes_version_prefix       = var.kubernetes_version_prefix
  ha                              = var.ha
  network                         = var.network
  node_pools                      = var.node_pools
  maintenance_window              = var.maintenance_window
  control_plane_allowed_addresses = var.control_plane_allowed_addresses
  registry                        = var.registry
}
