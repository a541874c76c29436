//go:build tools

// Package tools makes the Flux API packages (and controller-gen) part of this module's graph.
package tools

import (
	_ "github.com/fluxcd/image-automation-controller/api/v1"
	_ "github.com/fluxcd/image-reflector-controller/api/v1"
	_ "github.com/fluxcd/notification-controller/api/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
