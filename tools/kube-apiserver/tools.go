//go:build tools

// Package tools pins kube-apiserver for scripts/tools.sh (go build from this module).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
