//go:build tools

// Package tools pins OpenTofu for the terraform fallback in scripts/tools.sh.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
