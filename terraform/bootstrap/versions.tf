terraform {
  required_version = ">= 1.9.0"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.99" # docs followed: provider v2.99.1
    }
    flux = {
      source  = "fluxcd/flux"
      version = "~> 1.8" # flux_bootstrap_git as of provider v1.8.5
    }
  }

  # Same Spaces bucket as the environment roots, one state per cluster:
  #   terraform init -backend-config=backend.hcl -backend-config="key=bootstrap/staging/terraform.tfstate"
  backend "s3" {}
}
