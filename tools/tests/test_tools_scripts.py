"""Unit tests of tools/install/*.sh functions, each run by a real bash under
``set -euo pipefail`` exactly as scripts/tools.sh runs them. Commands that would change the
machine (apt-get, dpkg-query, apt-cache) are replaced by shell functions over a fake package
database in a temporary folder, so the pin policy can be driven through drift and back.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bash(script: str, tools: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs ``script`` after sourcing the toolchain libraries, under set -euo pipefail."""
    prelude = textwrap.dedent(
        f"""\
        set -euo pipefail
        cd {ROOT}
        export OUTRIGGER_TOOLS={tools}
        source tools/install/common.sh
        source tools/install/apt.sh
        source tools/install/go.sh
        """
    )
    return subprocess.run(
        ["bash", "-c", prelude + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", **env},
    )


def test_installed_version_of_an_unknown_package_is_empty_not_fatal(
    tmp_path: Path,
) -> None:
    # dpkg-query exits 1 for a package it has never heard of; under pipefail that used to kill
    # the whole apt step with no message.
    r = bash(
        """
        v=$(apt_installed_version outrigger-no-such-package)
        echo "after:[$v]"
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "after:[]"


def test_installed_version_of_an_installed_package(tmp_path: Path) -> None:
    r = bash("apt_installed_version bash", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()[0].isdigit(), r.stdout


def test_gomod_requires_reads_a_long_go_mod_under_pipefail(tmp_path: Path) -> None:
    # The pin is near the top of a go.mod far longer than a pipe buffer: a `grep | grep -q`
    # pipeline dies of SIGPIPE there and pipefail reported "does not require" for a pin it had.
    gomod = tmp_path / "go.mod"
    lines = [
        "module example.com/wrapper",
        "",
        "go 1.26",
        "",
        "// pinned v9.9.9 in a comment only",
    ]
    lines += ["require k8s.io/kubernetes v1.36.3", "", "require ("]
    lines += [f"\texample.com/dep{i} v0.{i}.0 // indirect" for i in range(20000)]
    lines += [")"]
    gomod.write_text("\n".join(lines) + "\n")
    assert gomod.stat().st_size > 512 * 1024
    for _ in range(5):
        r = bash(f"gomod_requires {gomod} v1.36.3 && echo yes", tmp_path)
        assert (r.returncode, r.stdout.strip()) == (0, "yes"), r.stderr
    r = bash(f"gomod_requires {gomod} v1.36.4 || echo no", tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "no"), r.stderr
    r = bash(f"gomod_requires {gomod} v9.9.9 || echo comment-ignored", tmp_path)
    assert r.stdout.strip() == "comment-ignored", r.stderr


FAKE_APT = """
    # A fake archive and dpkg database: $FAKE/installed/NAME holds the installed version,
    # $FAKE/archive/NAME the one version the archive offers, $FAKE/apt-get.calls each install.
    FAKE={fake}
    APT_PINS=(nginx=1.0-u11 jq=2.0)
    apt_installed_version() {{ cat "$FAKE/installed/$1" 2>/dev/null || true; }}
    apt_offered() {{ [[ "$(cat "$FAKE/archive/$1")" == "$2" ]]; }}
    apt_candidate() {{ cat "$FAKE/archive/$1"; }}
    id() {{ echo 0; }}
    apt-get() {{
      echo "$*" >>"$FAKE/apt-get.calls"
      local a
      for a in "$@"; do
        [[ "$a" == *=* && "$a" != -* ]] && echo "${{a#*=}}" >"$FAKE/installed/${{a%%=*}}"
      done
      return 0
    }}
    mkdir -p "$OUTRIGGER_TOOLS/logs"
"""


def fake_apt(
    tmp_path: Path, archive: dict[str, str], installed: dict[str, str]
) -> Path:
    fake = tmp_path / "fake"
    for sub, versions in (("archive", archive), ("installed", installed)):
        (fake / sub).mkdir(parents=True)
        for name, version in versions.items():
            (fake / sub / name).write_text(version + "\n")
    return fake


def test_build_go_tool_builds_a_prepared_source_dir_with_its_tags(
    tmp_path: Path,
) -> None:
    # The monitoring step's two additions: srcdir:DIR:PKG (a module copy prepared outside the
    # module cache, built as the main module) and the TAGS field (Prometheus' service discovery
    # build tags), through a real `go build`.
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text("module example.com/tagged\n\ngo 1.21\n")
    (src / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nvar picked = "default"\n\nfunc main() { fmt.Println(picked) }\n'
    )
    (src / "tagged.go").write_text(
        '//go:build only_this\n\npackage main\n\nfunc init() { picked = "tagged" }\n'
    )
    tools = tmp_path / "tools"
    env = {
        "HOME": str(tmp_path),
        "GOCACHE": str(tmp_path / "gocache"),
        "GOPATH": str(tmp_path / "gopath"),
    }
    for tags, want in (("", "default"), ("only_this", "tagged")):
        r = bash(
            f"""
            go_env_setup
            GOFLAGS="$GOFLAGS -mod=mod" build_go_tool tagged v0.0.1 srcdir:{src}:. "" {tags or '""'}
            "$GOBIN/tagged"
            tail -n 1 "$OUTRIGGER_TOOLS/logs/go-tagged.log"
            """,
            tools,
            PATH="/usr/local/go/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            **env,
        )
        assert r.returncode == 0, r.stderr + r.stdout
        printed, logged = r.stdout.strip().splitlines()
        assert printed == want
        assert logged.startswith("built tagged v0.0.1 in ")


def test_retired_pin_with_drift_allowed_installs_once_then_is_a_no_op(
    tmp_path: Path,
) -> None:
    # The archive replaced nginx 1.0-u11 by 1.0-u12 (what happened to deb12u11): the first run
    # installs the candidate, every later run must install nothing and say so.
    fake = fake_apt(tmp_path, {"nginx": "1.0-u12", "jq": "2.0"}, {"jq": "2.0"})
    tools = tmp_path / "tools"
    script = FAKE_APT.format(fake=fake) + "install_apt\n"
    first = bash(script, tools, OUTRIGGER_APT_ALLOW_DRIFT="1")
    assert first.returncode == 0, first.stderr
    assert (fake / "installed" / "nginx").read_text().strip() == "1.0-u12"
    assert "installing candidate 1.0-u12" in first.stderr
    assert (
        tools / "stamps" / "apt-drift-nginx"
    ).read_text().strip() == "1.0-u11 1.0-u12"
    calls = (fake / "apt-get.calls").read_text().splitlines()
    assert [c for c in calls if c.startswith("install")] == [
        (
            "install -y -q --no-install-recommends --allow-downgrades "
            "-o Dpkg::Options::=--force-confold nginx=1.0-u12"
        )
    ]
    for _ in range(2):
        # scripts/tools.sh clears this marker at its start; a step that installs sets it again.
        (tools / "logs" / ".changed").unlink(missing_ok=True)
        again = bash(script, tools, OUTRIGGER_APT_ALLOW_DRIFT="1")
        assert again.returncode == 0, again.stderr
        assert "all as the pin policy wants" in again.stderr
        assert "pinned 1.0-u11 is retired" in again.stderr
        assert (fake / "apt-get.calls").read_text().splitlines() == calls
        assert not (tools / "logs" / ".changed").exists()


def test_retired_pin_without_drift_fails_naming_the_pin_to_bump(tmp_path: Path) -> None:
    fake = fake_apt(tmp_path, {"nginx": "1.0-u12", "jq": "2.0"}, {"jq": "2.0"})
    r = bash(FAKE_APT.format(fake=fake) + "install_apt\n", tmp_path / "tools")
    assert r.returncode != 0
    assert "nginx=1.0-u11 is no longer offered" in r.stderr
    assert "bump the pin in tools/versions.sh to: 1.0-u12" in r.stderr
    assert not (fake / "installed" / "nginx").exists()


def test_bumping_the_pin_to_what_is_installed_clears_the_drift(tmp_path: Path) -> None:
    fake = fake_apt(tmp_path, {"nginx": "1.0-u12", "jq": "2.0"}, {"jq": "2.0"})
    tools = tmp_path / "tools"
    script = FAKE_APT.format(fake=fake) + "install_apt\n"
    assert bash(script, tools, OUTRIGGER_APT_ALLOW_DRIFT="1").returncode == 0
    bumped = script.replace("nginx=1.0-u11", "nginx=1.0-u12")
    r = bash(bumped, tools)
    assert r.returncode == 0, r.stderr
    assert "all as the pin policy wants" in r.stderr
    assert "retired" not in r.stderr


def test_a_package_missing_from_a_fresh_machine_is_installed_at_its_pin(
    tmp_path: Path,
) -> None:
    fake = fake_apt(tmp_path, {"nginx": "1.0-u11", "jq": "2.0"}, {})
    r = bash(FAKE_APT.format(fake=fake) + "install_apt\n", tmp_path / "tools")
    assert r.returncode == 0, r.stderr
    assert (fake / "installed" / "nginx").read_text().strip() == "1.0-u11"
    assert (fake / "installed" / "jq").read_text().strip() == "2.0"
    assert not (tmp_path / "tools" / "stamps" / "apt-drift-nginx").exists()
