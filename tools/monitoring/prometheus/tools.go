//go:build tools

// Package tools pins github.com/prometheus/prometheus@v0.314.0 for tools/install/monitoring.sh (tools/monitoring/regen.sh).
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
