//go:build tools

// Package tools pins Loki for tools/install/loki.sh (go build of cmd/loki from this module). A
// wrapper is needed because Loki's own go.mod replaces github.com/grafana/loki/pkg/push by a
// directory of its repository (./pkg/push), which `go install loki/v3/cmd/loki@VERSION` refuses;
// here it is the pseudo-version Loki's go.mod requires, and Loki's other replaces are copied over
// (a dependency's replaces do not apply to the module that requires it).
package tools

import (
	_ "github.com/grafana/loki/v3/cmd/loki"
)
