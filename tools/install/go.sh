# shellcheck shell=bash
# Go-built CLIs, compiled from the Go module proxy into $OUTRIGGER_TOOLS/bin (GOBIN). Tools whose
# own go.mod builds as is use `go install PKG@VERSION` (their go.sum pins every dependency); tools
# that cannot (a replace directive, or no go.mod at all) build from a wrapper module in tools/NAME/
# whose committed go.mod/go.sum pin the graph. Go's module and build caches stay in their default
# places, so a rebuild on the same machine only relinks.

GO_BUILD_JOBS=${OUTRIGGER_GO_JOBS:-2}

go_env_setup() {
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build the Go tools)"
  # Never fetch another Go toolchain behind our back: every pin here builds with this machine's Go.
  # OUTRIGGER_GOFLAGS adds flags on a shared machine (e.g. -p=1: one compile at a time).
  export GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false${OUTRIGGER_GOFLAGS:+ $OUTRIGGER_GOFLAGS}"
  export GOBIN="$OUTRIGGER_TOOLS/bin"
  mkdir -p "$GOBIN" "$OUTRIGGER_TOOLS/logs"
}

# gomod_requires GOMOD VERSION: true when a requirement line (not a comment) of GOMOD names exactly
# VERSION. One awk reads the whole file: a `grep | grep -q` pipeline here would let the first grep
# die of SIGPIPE when the second quits at its first match, and `pipefail` would turn that into
# "not found" for any go.mod longer than a pipe buffer.
gomod_requires() {
  awk -v want="$2" '
    /^[[:space:]]*\/\// { next }
    { for (i = 1; i <= NF; i++) if ($i == want) { found = 1; exit } }
    END { exit !found }
  ' "$1"
}

# go_tool_key VERSION TARGET: the stamp key: pin + Go version (a new Go means a new binary) + for a
# wrapper module, the hash of its go.mod/go.sum (a changed dependency graph means a rebuild).
go_tool_key() {
  local dir
  printf '%s %s' "$1" "$(go env GOVERSION)"
  if [[ "$2" == wrapper:* || "$2" == wrapper-test:* ]]; then
    IFS=: read -r _ dir _ <<<"$2"
    printf ' %s' "$(key_of "tools/$dir/go.mod" "tools/$dir/go.sum")"
  fi
}

# build_go_tool NAME VERSION TARGET [LDFLAGS [TAGS]]: TARGET is PKG@VERSION for `go install`,
# wrapper:DIR:PKG for a wrapper module in tools/DIR, wrapper-test:DIR:PKG for the test binary of
# PKG (`go test -c`) from that wrapper (the Gateway API conformance suite is a Go test), or
# srcdir:ABSDIR:PKG for a module source the caller prepared in ABSDIR; TAGS a comma-separated build
# tag list. Runs in the background-safe way: all output goes to $OUTRIGGER_TOOLS/logs/go-NAME.log.
build_go_tool() {
  local name=$1 version=$2 target=$3 ldflags="-s -w ${4:-}" tags=${5:-}
  local log="$OUTRIGGER_TOOLS/logs/go-$name.log" start
  start=$(date +%s)
  if [[ "$target" == srcdir:* ]]; then
    # A module's source prepared by the caller outside the module cache (built as the main module,
    # with its own go.mod and go.sum).
    local dir pkg
    IFS=: read -r _ dir pkg <<<"$target"
    (cd "$dir" && go build -tags="$tags" -ldflags="$ldflags" -o "$GOBIN/$name" "$pkg") >"$log" 2>&1 || return 1
  elif [[ "$target" == wrapper:* || "$target" == wrapper-test:* ]]; then
    local kind dir pkg
    IFS=: read -r kind dir pkg <<<"$target"
    # The pin in tools/versions.sh and the wrapper's go.mod must agree.
    if ! gomod_requires "tools/$dir/go.mod" "$version"; then
      echo "tools/$dir/go.mod does not require $version (tools/versions.sh); update one of them" >"$log"
      return 1
    fi
    if [[ "$kind" == wrapper-test ]]; then
      (cd "tools/$dir" && go test -c -tags="$tags" -ldflags="$ldflags" -o "$GOBIN/$name" "$pkg") >"$log" 2>&1 || return 1
    else
      (cd "tools/$dir" && go build -tags="$tags" -ldflags="$ldflags" -o "$GOBIN/$name" "$pkg") >"$log" 2>&1 || return 1
    fi
  else
    go install -tags="$tags" -ldflags="$ldflags" "$target" >"$log" 2>&1 || return 1
  fi
  printf 'built %s %s in %s s\n' "$name" "$version" "$(( $(date +%s) - start ))" >>"$log"
}

# install_go_tools SPEC...: SPEC is NAME|VERSION|TARGET|LDFLAGS[|TAGS]. Missing ones build in parallel,
# GO_BUILD_JOBS at a time (a new build starts as soon as any finishes); a failed build is reported
# with its log tail and makes this return non-zero after the others finished.
install_go_tools() {
  local spec name version target ldflags tags todo=() failed=0 pid
  local -A running=()
  for spec in "$@"; do
    IFS='|' read -r name version target _ <<<"$spec"
    if stamp_ok "go-$name" "$(go_tool_key "$version" "$target")" "$GOBIN/$name"; then
      skip_msg "$name" "$version"
    else
      todo+=("$spec")
    fi
  done
  for spec in "${todo[@]}"; do
    while [[ ${#running[@]} -ge $GO_BUILD_JOBS ]]; do
      reap_one_go_build || failed=1
    done
    IFS='|' read -r name version target ldflags tags <<<"$spec"
    log "build   $name $version ($target)"
    build_go_tool "$name" "$version" "$target" "$ldflags" "$tags" &
    running[$!]="$name|$version|$target"
  done
  while [[ ${#running[@]} -gt 0 ]]; do
    reap_one_go_build || failed=1
  done
  return "$failed"
}

# reap_one_go_build: waits for any build in the caller's `running` map and stamps it if it succeeded.
reap_one_go_build() {
  local pid rc=0 name version target
  wait -n -p pid "${!running[@]}" || rc=$?
  IFS='|' read -r name version target <<<"${running[$pid]}"
  unset "running[$pid]"
  if [[ $rc -eq 0 ]]; then
    stamp_write "go-$name" "$(go_tool_key "$version" "$target")"
    log "$(tail -n 1 "$OUTRIGGER_TOOLS/logs/go-$name.log")"
    return 0
  fi
  log "FAILED  $name $version; last lines of $OUTRIGGER_TOOLS/logs/go-$name.log:"
  tail -n 15 "$OUTRIGGER_TOOLS/logs/go-$name.log" >&2
  return 1
}

# keep_modules_cached WHAT MODULE@VERSION...: the modules in Go's module cache, for scripts that read
# them offline (GOPROXY=off). Not behind the stamps: a cached .tools/ on a machine with an empty
# module cache must still leave them there.
keep_modules_cached() {
  local what=$1
  shift
  (cd "$OUTRIGGER_TOOLS" && GOFLAGS=-mod=mod go mod download "$@") || die "go mod download $* failed ($what)"
}

# help_runs NAME...: each $OUTRIGGER_TOOLS/bin/NAME prints its --help; that it starts at all proves
# the binary links.
help_runs() {
  local name
  for name in "$@"; do
    "$OUTRIGGER_TOOLS/bin/$name" --help >/dev/null 2>&1 || die "$name --help failed"
  done
}
