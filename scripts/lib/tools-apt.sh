# shellcheck shell=bash
# Debian packages, pinned `name=version` (APT_PINS in tools/versions.sh). `apt-get update` runs only
# when something must be installed; services the packages ship are not started (the tests start
# their own instances on loopback).

# apt_installed_version NAME: the installed version, or nothing. dpkg-query exits 1 for a package it
# has never seen; that is an answer ("none"), not a failure, so it must not trip `pipefail`.
apt_installed_version() {
  { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null || true; } \
    | awk '$1 == "ii" { print $2 }'
}

install_apt() {
  local pin name want have missing=()
  for pin in "${APT_PINS[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    have=$(apt_installed_version "$name")
    if [[ "$have" == "$want" ]]; then
      continue
    fi
    log "apt     $name: installed '${have:-none}', pinned '$want'"
    missing+=("$pin")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "ok      debian packages (${#APT_PINS[@]} pinned, all at their pinned version)"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timed "apt-get update" apt-get update -qq
  local to_install=() cand
  for pin in "${missing[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    if apt-cache madison "$name" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | grep -qxF -- "$want"; then
      to_install+=("$pin")
    elif [[ "${OUTRIGGER_APT_ALLOW_DRIFT:-0}" == 1 ]]; then
      cand=$(apt-cache policy "$name" | awk '/Candidate:/ { print $2 }')
      log "WARNING $name=$want is no longer offered by the archive; installing candidate $cand (OUTRIGGER_APT_ALLOW_DRIFT=1)"
      to_install+=("$name=$cand")
    else
      die "$name=$want is no longer offered by the Debian archive (Debian keeps only the newest build);
       bump the pin in tools/versions.sh to: $(apt-cache policy "$name" | awk '/Candidate:/ { print $2 }')
       (or run once with OUTRIGGER_APT_ALLOW_DRIFT=1)"
    fi
  done
  log "install ${to_install[*]}"
  timed "apt-get install" apt-get install -y -q --no-install-recommends --allow-downgrades \
    -o Dpkg::Options::=--force-confold "${to_install[@]}" >"$OUTRIGGER_TOOLS/logs/apt.log" 2>&1 \
    || { tail -n 30 "$OUTRIGGER_TOOLS/logs/apt.log" >&2; die "apt-get install failed (log: $OUTRIGGER_TOOLS/logs/apt.log)"; }
  tools_changed
}
