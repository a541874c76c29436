terraform {
  required_version = ">= 1.9.0"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.99" # docs followed: provider v2.99.1
    }
  }

  # Remote state in DigitalOcean Spaces through the S3 backend. Non-secret settings are in
  # backend.hcl; the Spaces access key pair comes from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY:
  #   terraform init -backend-config=backend.hcl
  backend "s3" {}
}
