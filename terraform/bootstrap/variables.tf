variable "environment" {
  description = "Which cluster to bootstrap: \"staging\" or \"production\" (selects flux/clusters/<environment>)."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be \"staging\" or \"production\"."
  }
}

variable "cluster_name" {
  description = "DOKS cluster name (output cluster_name of terraform/envs/<environment>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,62}$", var.cluster_name))
    error_message = "cluster_name must be a DOKS cluster name (lowercase letters, digits, '-')."
  }
}

variable "git_url" {
  description = "SSH URL of this repository, e.g. ssh://git@github.com/<org>/outrigger.git."
  type        = string

  validation {
    condition     = can(regex("^ssh://git@[^/]+/.+\\.git$", var.git_url))
    error_message = "git_url must be an ssh://git@host/org/repo.git URL (Flux pushes its manifests over SSH)."
  }
}

variable "git_branch" {
  description = "Branch Flux syncs from and commits its own manifests to."
  type        = string
  default     = "main"
}

variable "git_ssh_private_key" {
  description = "Private half of a deploy key with write access (Flux commits flux-system/ and image updates). Pass via TF_VAR_git_ssh_private_key; never commit it."
  type        = string
  sensitive   = true
}

variable "flux_version" {
  description = "Flux distribution version to install; must match the manifests embedded in the pinned provider when embedded_manifests is on."
  type        = string
  default     = null
}

variable "infra_taint_key" {
  description = "Key of the infra pool taint (output infra_taint.key of the doks module); Flux controllers tolerate it."
  type        = string
  default     = "outrigger.io/dedicated"
}
