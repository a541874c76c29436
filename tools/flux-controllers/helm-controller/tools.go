//go:build tools

// Package tools pins helm-controller for scripts/lib/tools-flux.sh (go build from this module).
package tools

import _ "github.com/fluxcd/helm-controller"
