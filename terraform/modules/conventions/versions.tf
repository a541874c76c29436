terraform {
  # Provider-free on purpose: everything in this module is pure logic (naming, CIDR and pool-size
  # rules), so `terraform test` can exercise it offline without the DigitalOcean provider.
  required_version = ">= 1.9.0"
}
