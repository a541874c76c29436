# The API token comes from DIGITALOCEAN_TOKEN (never a variable with a default, never in state
# outputs). No Kubernetes/Helm provider here: the cluster's credentials are not needed to create
# it, and the DigitalOcean provider docs warn against configuring both in one root.
provider "digitalocean" {}
