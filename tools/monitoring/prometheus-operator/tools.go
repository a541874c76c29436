//go:build tools

// Package tools pins github.com/prometheus-operator/prometheus-operator@v0.93.1 for tools/install/monitoring.sh (tools/monitoring/regen.sh).
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
)
