terraform {
  required_version = ">= 1.9.0"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.0"
    }
    flux = {
      source  = "fluxcd/flux"
      version = "~> 1.3"
    }
  }

  # Same Spaces bucket as the environment roots, one state per cluster:
  #   terraform init -backend-config=backend.hcl -backend-config="key=bootstrap/staging/terraform.tfstate"
  backend "s3" {}
}
