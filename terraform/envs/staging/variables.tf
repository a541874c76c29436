variable "environment" {
  description = "Environment name; fixed to \"staging\" in terraform.tfvars."
  type        = string
}

variable "region" {
  description = "DigitalOcean region of the staging cluster."
  type        = string
}

variable "kubernetes_version_prefix" {
  description = "Kubernetes minor version prefix, e.g. \"1.33.\"."
  type        = string
}

variable "ha" {
  description = "Highly available control plane."
  type        = bool
}

variable "network" {
  description = "VPC range plus pod (cluster_subnet) and service (service_subnet) ranges."
  type = object({
    vpc_ip_range   = string
    cluster_subnet = string
    service_subnet = string
  })
}

variable "node_pools" {
  description = "Size and autoscaling bounds of the infra and apps pools."
  type = object({
    infra = object({ size = string, min_nodes = number, max_nodes = number })
    apps  = object({ size = string, min_nodes = number, max_nodes = number })
  })
}

variable "maintenance_window" {
  description = "Weekly UTC window for DOKS patch upgrades."
  type = object({
    day        = string
    start_time = string
  })
}

variable "registry" {
  description = "Container registry: create it here (staging) or read the existing one (production)."
  type = object({
    create = bool
    tier   = optional(string, "basic")
  })
}

variable "control_plane_allowed_addresses" {
  description = "CIDRs allowed to reach the Kubernetes API; empty disables the control-plane firewall."
  type        = list(string)
  default     = []
}
