//go:build tools

// Package tools pins source-controller for tools/install/flux.sh (go build from this module).
package tools

import _ "github.com/fluxcd/source-controller"
