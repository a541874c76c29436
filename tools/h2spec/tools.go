//go:build tools

// Package tools pins h2spec for scripts/tools.sh (go build from this module).
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
