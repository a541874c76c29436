output "name" {
  description = "Resource name prefix, \"<project>-<environment>\" (cluster, project)."
  value       = local.name
}

output "vpc_name" {
  description = "VPC name; VPC names are unique per region, so the region is part of it."
  value       = "${local.name}-${var.region}"
}

output "registry_name" {
  description = "Container registry name (one registry per DigitalOcean account, shared by both environments)."
  value       = var.project
}

output "tags" {
  description = "Tags applied to the cluster, pools and VPC-attached resources."
  value       = local.tags
}

output "infra_taint" {
  description = "Taint on the infra pool ({key, value, effect}); infrastructure must tolerate it."
  value       = local.infra_taint
}

output "pools" {
  description = "Node-pool definitions (name, size, bounds, labels, taints, tags) keyed by role."
  value       = local.pools
}

output "network" {
  description = "The validated address plan, passed through unchanged."
  value       = var.network
}

output "kubernetes_version_prefix" {
  description = "The validated Kubernetes version prefix."
  value       = var.kubernetes_version_prefix
}

output "project_environment" {
  description = "Value for digitalocean_project.environment (\"Staging\" or \"Production\")."
  value       = title(var.environment)
}
