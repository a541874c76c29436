# Shared non-secret backend settings; pass key=bootstrap/<environment>/terraform.tfstate on init.
bucket = "outrigger-tfstate"
region = "us-east-1" # required by the S3 client; Spaces ignores it
endpoints = {
  s3 = "https://fra1.digitaloceanspaces.com"
}
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
skip_s3_checksum            = true
