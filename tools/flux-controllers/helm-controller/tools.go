//go:build tools

// Package tools pins helm-controller for tools/install/flux.sh (go build from this module).
package tools

import _ "github.com/fluxcd/helm-controller"
