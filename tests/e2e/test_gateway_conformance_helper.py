"""tests/cluster/gateway_conformance.py, the verdict of make gateway-conformance, on real inputs: the
report and log of a run whose setup failed (no gateway yet), a passing and a failing report, the
merge into the cluster e2e's summary.json, and the image list read from manifests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "tests" / "cluster" / "gateway_conformance.py"

# The end of a real run (2026-12-07) in which no controller programmed the base Gateways.
SETUP_FAILED_LOG = """=== RUN   TestConformance
    suite.go:437: 2026-12-07T02:05:21.906036078Z: Test Setup: Ensuring Gateways and Pods from base manifests are ready
    suite.go:443: 
        \tError Trace:\tsigs.k8s.io/gateway-api/conformance@v1.6.3/utils/kubernetes/helpers.go:312
        \t            \t\t\t\t\tsigs.k8s.io/gateway-api/conformance@v1.6.3/utils/suite/suite.go:443
        \tError:      \tReceived unexpected error:
        \t            \tcontext deadline exceeded
        \tTest:       \tTestConformance
        \tMessages:   \terror waiting for gateway-conformance-infra namespaces to be ready
    apply.go:235: 2026-12-07T02:10:21.907373207Z: Deleting mismatch-ca-certificate 
--- FAIL: TestConformance (335.13s)
FAIL
"""
SETUP_FAILED_REPORT = """apiVersion: gateway.networking.k8s.io/v1
date: "2026-12-07T02:10:23Z"
gatewayAPIChannel: standard
gatewayAPIVersion: v1.6.3
implementation:
  contact:
  - https://github.com/outrigger-mesh/outrigger/issues
  organization: outrigger-mesh
  project: outrigger
  url: https://github.com/outrigger-mesh/outrigger
  version: v0.1.0
kind: ConformanceReport
mode: default
profiles: null
"""


def report(core_result: str, failed: list[str]) -> str:
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: ConformanceReport
gatewayAPIVersion: v1.6.3
profiles:
- name: GATEWAY-HTTP
  core:
    result: {core_result}
    statistics: {{Failed: {len(failed)}, Passed: 2, Skipped: 0}}
    failedTests: {json.dumps(failed)}
  extended:
    result: success
    statistics: {{Failed: 0, Passed: 1, Skipped: 0}}
    supportedFeatures: [HTTPRouteMethodMatching]
"""


PASS_LOG = """=== RUN   TestConformance/GatewayInvalidTLSConfiguration
=== NAME  TestConformance/GatewayInvalidTLSConfiguration/0_request
    http.go:325: 2026-12-07T02:19:38.541137908Z: Response expectation failed for request: {URL: {Scheme:http \
Opaque: User: Host:10.242.0.80 Path:/one Fragment: RawQuery:a=b RawPath: RawFragment: ForceQuery:false OmitHost:false}, \
Host: example.com, Protocol: HTTP, Method: GET, Headers: map[Version:[one] X-Echo-Set-Header:[]], UnfollowRedirect: \
false, ServerName: }  not ready yet: expected status code to be one of [200], got 404. (after 1.1s)
    --- PASS: TestConformance/HTTPRouteSimpleSameNamespace (1.52s)
    --- PASS: TestConformance/HTTPRouteMethodMatching (3.01s)
        --- PASS: TestConformance/HTTPRouteMethodMatching/0_request_to_'/' (0.01s)
    --- FAIL: TestConformance/GatewayInvalidTLSConfiguration (60.00s)
"""


def summarize(tmp_path: Path, report_text: str | None, log: str, existing: dict | None = None):
    rep = tmp_path / "report.yaml"
    if report_text is not None:
        rep.write_text(report_text)
    (tmp_path / "suite.log").write_text(log)
    (tmp_path / "phases.json").write_text('{"images": 7, "suite": 335}')
    (tmp_path / "host.json").write_text('{"name": "host-clean", "pass": true}')
    merged = tmp_path / "summary.json"
    if existing is not None:
        merged.write_text(json.dumps(existing))
    r = subprocess.run(
        [sys.executable, str(HELPER), "summary", "--report", str(rep), "--log", str(tmp_path / "suite.log"),
         "--phases", str(tmp_path / "phases.json"), "--gateway-ready", "true", "--host-clean", str(tmp_path / "host.json"),
         "--out", str(tmp_path / "out.json"), "--merge", str(merged)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return r, json.loads((tmp_path / "out.json").read_text()), json.loads(merged.read_text())


def test_a_run_whose_setup_failed_fails_with_the_suites_reason(tmp_path: Path) -> None:
    r, out, merged = summarize(tmp_path, SETUP_FAILED_REPORT, SETUP_FAILED_LOG, {"pass": True, "tests": [1]})
    assert r.returncode == 1
    assert out["pass"] is False and "no GATEWAY-HTTP profile" in out["reason"]
    want = (
        "Error: Received unexpected error: context deadline exceeded Test: TestConformance "
        "Messages: error waiting for gateway-conformance-infra namespaces to be ready"
    )
    assert out["log_errors"] == [want]
    assert merged["pass"] is False and merged["tests"] == [1] and merged["gateway_conformance"] == out


def test_no_report_at_all_fails(tmp_path: Path) -> None:
    r, out, _ = summarize(tmp_path, None, SETUP_FAILED_LOG)
    assert r.returncode == 1 and "no ConformanceReport" in out["reason"]


def test_every_core_test_passed_passes_and_lists_each_test(tmp_path: Path) -> None:
    r, out, merged = summarize(tmp_path, report("success", []), PASS_LOG, {"pass": True})
    assert r.returncode == 0, r.stdout + r.stderr
    assert out["pass"] is True and merged["pass"] is True
    assert out["tests"]["HTTPRouteSimpleSameNamespace"] == {"result": "pass", "seconds": 1.52}
    # Only TestConformance's direct subtests are conformance tests.
    assert set(out["tests"]) == {
        "HTTPRouteSimpleSameNamespace",
        "HTTPRouteMethodMatching",
        "GatewayInvalidTLSConfiguration",
    }
    assert out["extended"]["supported_features"] == ["HTTPRouteMethodMatching"]
    assert out["phases_s"] == {"images": 7, "suite": 335}
    assert "PASS HTTPRouteSimpleSameNamespace (1.52 s)" in r.stdout


def test_a_failed_core_test_fails_the_run(tmp_path: Path) -> None:
    r, out, merged = summarize(
        tmp_path, report("failure", ["GatewayInvalidTLSConfiguration"]), PASS_LOG, {"pass": True}
    )
    assert r.returncode == 1 and merged["pass"] is False
    assert out["core"]["failed_tests"] == ["GatewayInvalidTLSConfiguration"]
    # The last unmet expectation of the failed test, as one request line.
    assert out["tests"]["GatewayInvalidTLSConfiguration"]["last_unmet"] == (
        "GET http://10.242.0.80/one?a=b Host=example.com headers=map[Version:[one] X-Echo-Set-Header:[]]: "
        "expected status code to be one of [200], got 404. (after 1.1s)"
    )


def test_images_lists_what_the_gateway_http_manifests_pull(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "mesh").mkdir()
    (tmp_path / "base" / "manifests.yaml").write_text(
        "      containers:\n        - image: a/echo:v1\n          image: b/dns:v2\n"
    )
    (tmp_path / "tests" / "httproute-x.yaml").write_text("  image: a/echo:v3\n")
    (tmp_path / "tests" / "tcproute-y.yaml").write_text("  image: a/echo:tcp-only\n")
    (tmp_path / "mesh" / "manifests.yaml").write_text("  image: a/mesh:v1\n")
    r = subprocess.run(
        [sys.executable, str(HELPER), "images", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    # base/ and the HTTP tests' manifests; mesh/ and the TCP route tests are other profiles.
    assert r.stdout.split() == ["a/echo:v1", "a/echo:v3", "b/dns:v2"]
