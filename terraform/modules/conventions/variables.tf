# Input rules for one Outrigger environment. Every rule that can be checked without talking to
# DigitalOcean lives here, so the DOKS module, both environment roots and `terraform test` share
# one definition. Cross-field rules (CIDR overlap, min <= max) use Terraform >= 1.9 validations.

variable "project" {
  description = "Short project name used as the prefix of every resource name (lowercase, 3-20 chars)."
  type        = string
  default     = "outrigger"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.project))
    error_message = "project must be 3-20 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'."
  }
}

variable "environment" {
  description = "Deployment environment; selects names, tags and the stricter production rules."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be \"staging\" or \"production\"."
  }
}

variable "region" {
  description = "DigitalOcean region slug that offers DOKS (e.g. fra1, ams3, nyc1)."
  type        = string

  validation {
    condition     = contains(["ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"], var.region)
    error_message = "region must be a DOKS region slug: ams3, atl1, blr1, fra1, lon1, nyc1, nyc3, sfo2, sfo3, sgp1, syd1 or tor1."
  }
}

variable "kubernetes_version_prefix" {
  description = "Kubernetes minor version prefix passed to digitalocean_kubernetes_versions, e.g. \"1.33.\" (trailing dot required so 1.3 never matches 1.33)."
  type        = string
  default     = "1.33."

  validation {
    condition     = can(regex("^1\\.[0-9]{2}\\.$", var.kubernetes_version_prefix))
    error_message = "kubernetes_version_prefix must look like \"1.33.\" (major.minor with a trailing dot)."
  }
}

variable "network" {
  description = <<-EOT
    Address plan: the VPC range and the cluster's pod (cluster_subnet) and service (service_subnet)
    ranges. All three must be RFC 1918, must not overlap each other, and the VPC must be /16../24
    (the limit DigitalOcean documents for digitalocean_vpc.ip_range).
  EOT
  type = object({
    vpc_ip_range   = string
    cluster_subnet = string
    service_subnet = string
  })

  validation {
    condition = alltrue([
      for c in values(var.network) : can(cidrhost(c, 0)) && try(cidrhost(c, 0) == split("/", c)[0], false)
    ])
    error_message = "network: every range must be a CIDR written with its network address (e.g. 10.10.0.0/16, not 10.10.1.0/16)."
  }

  validation {
    condition = alltrue([
      for c in values(var.network) : try(anytrue([
        for private in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] :
        tonumber(split("/", c)[1]) >= tonumber(split("/", private)[1]) &&
        cidrsubnet(format("%s/%s", split("/", c)[0], split("/", private)[1]), 0, 0) == private
      ]), false)
    ])
    error_message = "network: every range must lie inside RFC 1918 space (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)."
  }

  validation {
    condition     = try(tonumber(split("/", var.network.vpc_ip_range)[1]) >= 16 && tonumber(split("/", var.network.vpc_ip_range)[1]) <= 24, false)
    error_message = "network.vpc_ip_range must be between /16 and /24."
  }

  validation {
    condition = try(
      tonumber(split("/", var.network.cluster_subnet)[1]) <= 20 && tonumber(split("/", var.network.service_subnet)[1]) <= 24,
      false
    )
    error_message = "network.cluster_subnet must be /20 or larger (pods) and network.service_subnet /24 or larger."
  }

  # Overlap: two ranges [s1, s1+n1) and [s2, s2+n2) overlap iff s1 < s2+n2 and s2 < s1+n1, with the
  # start address turned into an integer from its four octets. Invalid CIDRs are reported by the
  # first rule, so this one treats them as "no overlap" instead of failing a second time.
  validation {
    condition = try(alltrue([
      for pair in [["vpc_ip_range", "cluster_subnet"], ["vpc_ip_range", "service_subnet"], ["cluster_subnet", "service_subnet"]] : !(
        sum([for i, o in split(".", cidrhost(var.network[pair[0]], 0)) : tonumber(o) * pow(256, 3 - i)]) <
        sum([for i, o in split(".", cidrhost(var.network[pair[1]], 0)) : tonumber(o) * pow(256, 3 - i)]) + pow(2, 32 - tonumber(split("/", var.network[pair[1]])[1]))
        &&
        sum([for i, o in split(".", cidrhost(var.network[pair[1]], 0)) : tonumber(o) * pow(256, 3 - i)]) <
        sum([for i, o in split(".", cidrhost(var.network[pair[0]], 0)) : tonumber(o) * pow(256, 3 - i)]) + pow(2, 32 - tonumber(split("/", var.network[pair[0]])[1]))
      )
    ]), true)
    error_message = "network: vpc_ip_range, cluster_subnet and service_subnet must not overlap each other."
  }
}

variable "node_pools" {
  description = <<-EOT
    Size and autoscaling bounds of the two pools. `infra` (the cluster's default pool, tainted
    NoSchedule) runs Flux, cert-manager, the monitoring stack and Loki; `apps` runs the workloads.
    Droplet sizes are DigitalOcean slugs such as s-2vcpu-4gb or s-4vcpu-8gb-amd.
  EOT
  type = object({
    infra = object({ size = string, min_nodes = number, max_nodes = number })
    apps  = object({ size = string, min_nodes = number, max_nodes = number })
  })

  validation {
    condition = alltrue([
      for p in values(var.node_pools) : can(regex("^(s|c|c2|g|gd|m|m3|so|so1_5)-[0-9]+vcpu-[0-9]+gb(-intel|-amd)?$", p.size))
    ])
    error_message = "node_pools: size must be a Droplet slug like s-2vcpu-4gb, s-4vcpu-8gb-amd or c-4vcpu-8gb."
  }

  validation {
    condition     = alltrue([for p in values(var.node_pools) : !can(regex("^s-1vcpu-(1|2)gb", p.size))])
    error_message = "node_pools: s-1vcpu-1gb/2gb nodes leave too little allocatable memory for the DaemonSets; use s-2vcpu-4gb or larger."
  }

  validation {
    condition = alltrue([
      for p in values(var.node_pools) : floor(p.min_nodes) == p.min_nodes && floor(p.max_nodes) == p.max_nodes && p.min_nodes >= 1 && p.max_nodes >= p.min_nodes && p.max_nodes <= 20
    ])
    error_message = "node_pools: min_nodes and max_nodes must be whole numbers with 1 <= min_nodes <= max_nodes <= 20."
  }

  validation {
    condition     = var.environment != "production" || alltrue([for p in values(var.node_pools) : p.min_nodes >= 2])
    error_message = "node_pools: production needs min_nodes >= 2 in every pool so a node drain never takes a pool down."
  }
}
