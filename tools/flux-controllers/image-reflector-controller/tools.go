//go:build tools

// Package tools pins image-reflector-controller for tools/install/flux.sh (go build from this module).
package tools

import _ "github.com/fluxcd/image-reflector-controller"
