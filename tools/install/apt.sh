# shellcheck shell=bash
# Debian packages, pinned `name=version` (APT_PINS in tools/versions.sh). `apt-get update` runs only
# when something must be installed; services the packages ship are not started (the tests start
# their own instances on loopback).
#
# Pin policy (docs/tools.md, "Debian pins"): Debian keeps only the newest build of a package, so a
# security update can retire a pin. With OUTRIGGER_APT_ALLOW_DRIFT=1 (CI's default) the archive's
# candidate is installed instead and recorded in the stamp `apt-drift-NAME` as "PIN CANDIDATE";
# while that pin and that installed version stay the same, later runs accept it (a WARNING names
# the pin to bump) and install nothing. Without it, a retired pin fails with the version to bump to.

# apt_installed_version NAME: the installed version, or nothing. dpkg-query exits 1 for a package it
# has never seen; that is an answer ("none"), not a failure, so it must not trip `pipefail`.
apt_installed_version() {
  { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null || true; } \
    | awk '$1 == "ii" { print $2 }'
}

# apt_offered NAME VERSION: true when the archive still offers exactly VERSION of NAME.
apt_offered() {
  { apt-cache madison "$1" 2>/dev/null || true; } \
    | awk -F'|' -v want="$2" '{ gsub(/ /, "", $2); if ($2 == want) found = 1 } END { exit !found }'
}

# apt_candidate NAME: the version `apt-get install NAME` would take now.
apt_candidate() {
  { apt-cache policy "$1" 2>/dev/null || true; } | awk '/Candidate:/ { print $2 }'
}

# apt_drift_recorded NAME PIN INSTALLED: true when an earlier run installed INSTALLED in place of
# the retired PIN (stamp apt-drift-NAME), so the current state is what the policy chose.
apt_drift_recorded() {
  stamp_ok "apt-drift-$1" "$2 $3"
}

# apt_unsatisfied: prints the pins (one per line) whose package is not installed as the policy
# wants; logs a WARNING for each accepted drift. Needs no root and changes nothing.
apt_unsatisfied() {
  local pin name want have
  for pin in "${APT_PINS[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    have=$(apt_installed_version "$name")
    if [[ "$have" == "$want" ]]; then
      continue
    fi
    if [[ -n "$have" ]] && apt_drift_recorded "$name" "$want" "$have"; then
      log "WARNING $name: pinned $want is retired by the archive; $have installed in its place (bump the pin in tools/versions.sh)"
      continue
    fi
    log "apt     $name: installed '${have:-none}', pinned '$want'"
    printf '%s\n' "$pin"
  done
}

# apt_resolve PIN...: prints `name=version` to install for each pin and records the drift choices
# in DRIFT_CHOSEN (name -> "pin candidate"); dies on a retired pin unless drift is allowed.
apt_resolve() {
  local pin name want cand
  for pin in "$@"; do
    name=${pin%%=*} want=${pin#*=}
    if apt_offered "$name" "$want"; then
      printf '%s\n' "$pin"
      continue
    fi
    cand=$(apt_candidate "$name")
    [[ -n "$cand" ]] || die "$name is not offered by the Debian archive at all (apt-cache policy $name)"
    if [[ "${OUTRIGGER_APT_ALLOW_DRIFT:-0}" != 1 ]]; then
      die "$name=$want is no longer offered by the Debian archive (Debian keeps only the newest build);
       bump the pin in tools/versions.sh to: $cand
       (or run once with OUTRIGGER_APT_ALLOW_DRIFT=1)"
    fi
    log "WARNING $name=$want is no longer offered by the archive; installing candidate $cand (OUTRIGGER_APT_ALLOW_DRIFT=1)"
    printf '%s=%s\n' "$name" "$cand"
  done
}

install_apt() {
  local missing=() to_install=() pin name want
  mapfile -t missing < <(apt_unsatisfied)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "ok      debian packages (${#APT_PINS[@]} pinned, all as the pin policy wants)"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timed "apt-get update" apt-get update -qq
  mapfile -t to_install < <(apt_resolve "${missing[@]}")
  [[ ${#to_install[@]} -eq ${#missing[@]} ]] || die "could not resolve every pin: ${missing[*]}"
  log "install ${to_install[*]}"
  timed "apt-get install" apt-get install -y -q --no-install-recommends --allow-downgrades \
    -o Dpkg::Options::=--force-confold "${to_install[@]}" >"$OUTRIGGER_TOOLS/logs/apt.log" 2>&1 \
    || { tail -n 30 "$OUTRIGGER_TOOLS/logs/apt.log" >&2; die "apt-get install failed (log: $OUTRIGGER_TOOLS/logs/apt.log)"; }
  # Record each drift that is now in place, so the next run sees the policy's choice as done.
  for pin in "${missing[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    if [[ " ${to_install[*]} " != *" $pin "* ]]; then
      stamp_write "apt-drift-$name" "$want $(apt_installed_version "$name")"
    else
      rm -f "$OUTRIGGER_TOOLS/stamps/apt-drift-$name"
    fi
  done
  tools_changed
}
