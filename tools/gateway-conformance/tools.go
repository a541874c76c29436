//go:build tools

// Package tools keeps the suite and echo-basic in this module's dependency graph, so `go mod tidy`
// records every module their tests and binary need.
package tools

import (
	_ "sigs.k8s.io/gateway-api/conformance"
	_ "sigs.k8s.io/gateway-api/conformance/echo-basic"
)
