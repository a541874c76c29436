output "cluster_id" {
  description = "DOKS cluster ID (input of terraform/bootstrap)."
  value       = module.doks.cluster_id
}

output "cluster_name" {
  description = "DOKS cluster name."
  value       = module.doks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.doks.cluster_endpoint
}

output "vpc_id" {
  description = "VPC ID."
  value       = module.doks.vpc_id
}

output "registry_endpoint" {
  description = "Container registry endpoint."
  value       = module.doks.registry_endpoint
}

output "kubeconfig_command" {
  description = "Writes a kubeconfig with short-lived exec credentials."
  value       = module.doks.kubeconfig_command
}
