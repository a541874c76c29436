# Inputs of the DOKS module. The rules (regions, sizes, CIDR overlap, node counts) are enforced by
# validation blocks in ../conventions, which this module calls first; they live there so that
# `terraform test` can exercise them without the DigitalOcean provider.

variable "project" {
  description = "Short project name, prefix of every resource name."
  type        = string
  default     = "outrigger"
}

variable "environment" {
  description = "\"staging\" or \"production\"."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug (must offer DOKS)."
  type        = string
}

variable "kubernetes_version_prefix" {
  description = "Kubernetes minor version prefix, e.g. \"1.33.\"; the newest DOKS patch release of that minor is used."
  type        = string
  default     = "1.33."
}

variable "network" {
  description = "VPC range and the cluster's pod (cluster_subnet) and service (service_subnet) ranges; RFC 1918, non-overlapping."
  type = object({
    vpc_ip_range   = string
    cluster_subnet = string
    service_subnet = string
  })
}

variable "node_pools" {
  description = "Droplet size and autoscaling bounds for the infra (default, tainted) and apps pools."
  type = object({
    infra = object({ size = string, min_nodes = number, max_nodes = number })
    apps  = object({ size = string, min_nodes = number, max_nodes = number })
  })
}

variable "ha" {
  description = "Highly available control plane (cannot be turned off again once enabled)."
  type        = bool
  default     = true
}

variable "maintenance_window" {
  description = "Weekly window (UTC) for DOKS patch upgrades; only effective because auto_upgrade is on."
  type = object({
    day        = string
    start_time = string
  })
  default = {
    day        = "sunday"
    start_time = "03:00"
  }

  validation {
    condition     = contains(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "any"], var.maintenance_window.day)
    error_message = "maintenance_window.day must be a lowercase weekday or \"any\"."
  }

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.maintenance_window.start_time))
    error_message = "maintenance_window.start_time must be HH:MM (UTC)."
  }
}

variable "control_plane_allowed_addresses" {
  description = "CIDRs allowed to reach the Kubernetes API (control-plane firewall). Empty list = firewall disabled."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.control_plane_allowed_addresses : can(cidrhost(c, 0))])
    error_message = "control_plane_allowed_addresses must be CIDRs."
  }
}

variable "registry" {
  description = <<-EOT
    Container registry. DigitalOcean allows one registry per account, so exactly one environment
    creates it (create = true) and the other reads it (create = false). tier is the subscription
    slug (starter, basic, professional).
  EOT
  type = object({
    create = bool
    tier   = optional(string, "basic")
  })

  validation {
    condition     = contains(["starter", "basic", "professional"], var.registry.tier)
    error_message = "registry.tier must be starter, basic or professional."
  }
}

variable "extra_tags" {
  description = "Additional DigitalOcean tags for the cluster and pools."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.extra_tags : can(regex("^[A-Za-z0-9_:-]{1,255}$", t))])
    error_message = "extra_tags may contain letters, digits, '_', '-' and ':' only."
  }
}
