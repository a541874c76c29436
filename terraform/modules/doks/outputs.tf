# No credentials here: kubeconfigs come from `doctl kubernetes cluster kubeconfig save <name>`
# (short-lived exec credentials), never from a Terraform output.

output "cluster_id" {
  description = "DOKS cluster ID."
  value       = digitalocean_kubernetes_cluster.this.id
}

output "cluster_name" {
  description = "DOKS cluster name (for doctl kubernetes cluster kubeconfig save)."
  value       = digitalocean_kubernetes_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint URL (not a secret; access still needs exec credentials)."
  value       = digitalocean_kubernetes_cluster.this.endpoint
}

output "cluster_version" {
  description = "Kubernetes version the cluster was created with (auto_upgrade moves patch releases)."
  value       = digitalocean_kubernetes_cluster.this.version
}

output "cluster_urn" {
  description = "Cluster URN (for digitalocean_project resources)."
  value       = digitalocean_kubernetes_cluster.this.urn
}

output "vpc_id" {
  description = "VPC ID."
  value       = digitalocean_vpc.this.id
}

output "registry_endpoint" {
  description = "Container registry endpoint, e.g. registry.digitalocean.com/outrigger."
  value       = var.registry.create ? digitalocean_container_registry.this[0].endpoint : data.digitalocean_container_registry.this[0].endpoint
}

output "project_id" {
  description = "DigitalOcean project ID."
  value       = digitalocean_project.this.id
}

output "infra_taint" {
  description = "Taint on the infra pool; pass its key to the Flux bootstrap as a toleration key."
  value       = module.conventions.infra_taint
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig with short-lived exec credentials for this cluster."
  value       = "doctl kubernetes cluster kubeconfig save ${digitalocean_kubernetes_cluster.this.name}"
}
