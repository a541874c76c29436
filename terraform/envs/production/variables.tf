variable "region" {
  description = "DigitalOcean region for the production cluster."
  type        = string
  default     = "fra1"
}

variable "control_plane_allowed_addresses" {
  description = "CIDRs allowed to reach the Kubernetes API; empty disables the control-plane firewall."
  type        = list(string)
  default     = []
}
