# Bootstraps Flux on an existing DOKS cluster (run after terraform/envs/<environment>).
# Credentials: the Kubernetes side uses doctl's exec credential plugin (short-lived tokens minted
# from DIGITALOCEAN_ACCESS_TOKEN at use), never a long-lived service-account token.

data "digitalocean_kubernetes_cluster" "this" {
  name = var.cluster_name
}

provider "digitalocean" {}

provider "flux" {
  kubernetes = {
    host                   = data.digitalocean_kubernetes_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.digitalocean_kubernetes_cluster.this.kube_config[0].cluster_ca_certificate)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "doctl"
      args        = ["kubernetes", "cluster", "kubeconfig", "exec-credential", "--version=v1beta1", data.digitalocean_kubernetes_cluster.this.id]
    }
  }
  git = {
    url    = var.git_url
    branch = var.git_branch
    ssh = {
      username    = "git"
      private_key = var.git_ssh_private_key
    }
  }
}

locals {
  # Replaces the flux-system/kustomization.yaml that bootstrap writes: pins every Flux controller
  # to the infra pool (tolerating its taint comes from toleration_keys below).
  flux_system_kustomization = yamlencode({
    apiVersion = "kustomize.config.k8s.io/v1beta1"
    kind       = "Kustomization"
    resources  = ["gotk-components.yaml", "gotk-sync.yaml"]
    patches = [{
      target = { kind = "Deployment", labelSelector = "app.kubernetes.io/part-of=flux" }
      patch = yamlencode([{
        op    = "add"
        path  = "/spec/template/spec/nodeSelector"
        value = { "doks.digitalocean.com/node-pool" = "infra" }
      }])
    }]
  })
}

resource "flux_bootstrap_git" "this" {
  path               = "flux/clusters/${var.environment}"
  version            = var.flux_version
  embedded_manifests = true # no download from GitHub at apply time

  # Image automation promotes new image tags into flux/apps/<environment>.
  components_extra = ["image-reflector-controller", "image-automation-controller"]

  toleration_keys        = [var.infra_taint_key]
  kustomization_override = local.flux_system_kustomization
  network_policy         = true
  interval               = "1m0s"
}
