//go:build tools

// Package tools pins notification-controller for tools/install/flux.sh (go build from this module).
package tools

import _ "github.com/fluxcd/notification-controller"
