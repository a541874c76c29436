"""Platform checks for the Flux tree, the Outrigger chart and the Terraform docs (used by
scripts/check-*.sh through tools/checks/outrigger-checks).

Subcommands:
  render OUT        Render what Flux would apply on every cluster in flux/clusters (flux_render)
                    into OUT, with OUT/index.json for the checks below.
  placement OUT     Assert node-pool placement on the rendered output and that Terraform's
                    pools/taint/Flux-controller placement match (placement).
  flux-apis FILE..  Fail on any Flux object whose apiVersion is not the current one for its kind,
                    and on a version table older than the toolchain's Flux CRDs (flux_apis).
  dryrun STATE F..  Create every object with dryRun=All on the kube-test-env API server in STATE.
  selftest OUT      Prove the checks above reject deliberately broken input.
  promql            Parse every PromQL expression in dashboards and rules; every metric name must
                    be documented in docs/metrics.md or listed in known-metrics.txt.
  rules-spec IN OUT Write a PrometheusRule's .spec as a plain rules file (promtool check rules).
  dashboards        Dashboards parse as JSON, have the expected stable uids and unique panel ids.
  dashboards-gen [--check]  Write charts/outrigger/dashboards/*.json from outrigger_checks.dashboards
                    (--check: fail when a committed file is out of date).
  tfdocs [--check]  Write terraform/README.md's reference tables from the HCL (--check: fail when
                    out of date).
  invariants F..    The agent's security and placement contract on rendered chart files.
  gateway-invariants F..  The gateway's RBAC, Pod Security and drain contract on rendered chart
                    files (gateway_chart); at least one file must hold the gateway.
  app-invariants F..  The app chart's contract: Pod Security "restricted", rollout rules and the
                    sidecar wiring on rendered files (app_chart).
  library-consumer F  The sidecar library's settings as rendered into its consumer fixture.
  drain-token       Print the proxy's drain token of the Deployment rendered on stdin.
  admit STATE F..   Dry-run every object on the kube-test-env API server in STATE, and admit a Pod
                    from every pod template under enforce=restricted (admission).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .failure import CheckFailed


def run(argv: list[str]) -> int:
    # Imported per subcommand: `promql`/`dashboards` must not need what `dryrun` needs, and so on.
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "render" and len(args) == 1:
        from .flux_render import cmd_render

        cmd_render(Path(args[0]))
    elif cmd == "placement" and len(args) == 1:
        from .placement import cmd_placement

        cmd_placement(Path(args[0]))
    elif cmd == "flux-apis" and args:
        from .flux_apis import cmd_flux_apis

        cmd_flux_apis(args)
    elif cmd == "promql" and not args:
        from .promql_check import cmd_promql

        cmd_promql()
    elif cmd == "rules-spec" and len(args) == 2:
        from .promql_check import cmd_rules_spec

        cmd_rules_spec(Path(args[0]), Path(args[1]))
    elif cmd == "dashboards" and not args:
        from .dashboards import cmd_dashboards

        cmd_dashboards()
    elif cmd == "dashboards-gen" and args in ([], ["--check"]):
        from .dashboards import generate

        return generate(check=bool(args))
    elif cmd == "tfdocs" and args in ([], ["--check"]):
        from .tfdocs import cmd_tfdocs

        return cmd_tfdocs(check=bool(args))
    elif cmd == "dryrun" and len(args) >= 2:
        from .dryrun import cmd_dryrun

        cmd_dryrun(Path(args[0]), args[1:])
    elif cmd == "selftest" and len(args) == 1:
        from .selftest import cmd_selftest

        cmd_selftest(Path(args[0]))
    elif cmd == "invariants" and args:
        from .agent_invariants import cmd_invariants

        cmd_invariants(args)
    elif cmd == "gateway-invariants" and args:
        from .gateway_chart import cmd_gateway_invariants

        cmd_gateway_invariants(args)
    elif cmd == "app-invariants" and args:
        from .app_chart import cmd_app_invariants

        cmd_app_invariants(args)
    elif cmd == "library-consumer" and len(args) == 1:
        from .app_chart import cmd_library_consumer

        cmd_library_consumer(args[0])
    elif cmd == "drain-token" and not args:
        from .app_chart import drain_token

        print(drain_token(sys.stdin.read()))
    elif cmd == "admit" and len(args) >= 2:
        from .admission import cmd_admit

        cmd_admit(Path(args[0]), args[1:])
    else:
        print(f"FAIL: bad usage: {' '.join(argv)}\n{__doc__}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:])
    except CheckFailed as e:
        print("\n".join(f"FAIL: {m}" for m in e.errors), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
