# Provider-free tests of the naming, CIDR and node-pool rules (run: terraform test, in this module).

variables {
  environment = "staging"
  region      = "fra1"
  network = {
    vpc_ip_range   = "10.10.0.0/16"
    cluster_subnet = "10.200.0.0/16"
    service_subnet = "10.201.0.0/20"
  }
  node_pools = {
    infra = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 3 }
    apps  = { size = "s-4vcpu-8gb-amd", min_nodes = 1, max_nodes = 5 }
  }
}

run "staging_defaults_are_valid" {
  command = plan

  assert {
    condition     = output.name == "outrigger-staging"
    error_message = "name prefix must be <project>-<environment>"
  }
  assert {
    condition     = output.vpc_name == "outrigger-staging-fra1"
    error_message = "VPC name must include the region"
  }
  assert {
    condition     = output.tags == ["outrigger", "env:staging", "managed-by:terraform"]
    error_message = "unexpected tags"
  }
  assert {
    condition     = output.project_environment == "Staging"
    error_message = "digitalocean_project.environment must be title-cased"
  }
}

run "infra_pool_is_tainted_noschedule_and_apps_pool_is_not" {
  command = plan

  assert {
    condition     = output.pools.infra.taints == [{ key = "outrigger.io/dedicated", value = "infra", effect = "NoSchedule" }]
    error_message = "infra pool must carry exactly the NoSchedule taint outrigger.io/dedicated=infra"
  }
  assert {
    condition     = length(output.pools.apps.taints) == 0
    error_message = "apps pool must not be tainted"
  }
  assert {
    condition     = output.pools.infra.name == "infra" && output.pools.apps.name == "apps"
    error_message = "pool names are the values of doks.digitalocean.com/node-pool that Flux selects on"
  }
  assert {
    condition     = output.pools.infra.labels["outrigger.io/pool"] == "infra" && output.pools.apps.labels["outrigger.io/pool"] == "apps"
    error_message = "pool labels must name the role"
  }
}

run "production_accepts_two_node_minimum" {
  command = plan
  variables {
    environment = "production"
    node_pools = {
      infra = { size = "s-4vcpu-8gb", min_nodes = 2, max_nodes = 4 }
      apps  = { size = "s-4vcpu-8gb", min_nodes = 2, max_nodes = 10 }
    }
  }
  assert {
    condition     = output.name == "outrigger-production" && output.project_environment == "Production"
    error_message = "production naming"
  }
}

run "production_rejects_single_node_pool" {
  command = plan
  variables {
    environment = "production"
  }
  expect_failures = [var.node_pools]
}

run "vpc_overlapping_pod_range_is_rejected" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "10.10.0.0/16"
      cluster_subnet = "10.0.0.0/12" # contains 10.10.0.0/16
      service_subnet = "10.201.0.0/20"
    }
  }
  expect_failures = [var.network]
}

run "pod_and_service_ranges_overlapping_is_rejected" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "10.10.0.0/16"
      cluster_subnet = "10.200.0.0/16"
      service_subnet = "10.200.16.0/20" # inside the pod range
    }
  }
  expect_failures = [var.network]
}

run "adjacent_ranges_do_not_overlap" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "10.11.0.0/16"
      cluster_subnet = "10.12.0.0/16"
      service_subnet = "10.10.255.0/24" # ends right before the VPC starts
    }
  }
}

run "public_range_is_rejected" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "100.64.0.0/16"
      cluster_subnet = "10.200.0.0/16"
      service_subnet = "10.201.0.0/20"
    }
  }
  expect_failures = [var.network]
}

run "non_network_address_is_rejected" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "10.10.1.0/16"
      cluster_subnet = "10.200.0.0/16"
      service_subnet = "10.201.0.0/20"
    }
  }
  expect_failures = [var.network]
}

run "vpc_larger_than_slash16_is_rejected" {
  command = plan
  variables {
    network = {
      vpc_ip_range   = "172.16.0.0/12"
      cluster_subnet = "10.200.0.0/16"
      service_subnet = "10.201.0.0/20"
    }
  }
  expect_failures = [var.network]
}

run "unknown_region_is_rejected" {
  command = plan
  variables {
    region = "mars1"
  }
  expect_failures = [var.region]
}

run "unknown_environment_is_rejected" {
  command = plan
  variables {
    environment = "dev"
  }
  expect_failures = [var.environment]
}

run "min_above_max_is_rejected" {
  command = plan
  variables {
    node_pools = {
      infra = { size = "s-2vcpu-4gb", min_nodes = 3, max_nodes = 2 }
      apps  = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 3 }
    }
  }
  expect_failures = [var.node_pools]
}

run "tiny_droplet_is_rejected" {
  command = plan
  variables {
    node_pools = {
      infra = { size = "s-1vcpu-1gb", min_nodes = 1, max_nodes = 2 }
      apps  = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 3 }
    }
  }
  expect_failures = [var.node_pools]
}

run "bad_size_slug_is_rejected" {
  command = plan
  variables {
    node_pools = {
      infra = { size = "large", min_nodes = 1, max_nodes = 2 }
      apps  = { size = "s-2vcpu-4gb", min_nodes = 1, max_nodes = 3 }
    }
  }
  expect_failures = [var.node_pools]
}

run "bad_version_prefix_is_rejected" {
  command = plan
  variables {
    kubernetes_version_prefix = "1.33"
  }
  expect_failures = [var.kubernetes_version_prefix]
}

run "bad_project_name_is_rejected" {
  command = plan
  variables {
    project = "Outrigger_"
  }
  expect_failures = [var.project]
}
