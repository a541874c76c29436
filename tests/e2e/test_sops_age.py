"""The GitOps secret tooling (scripts/tools.sh: age from Debian, sops from the Go module proxy)
as Flux's kustomize-controller uses it: a Kubernetes Secret encrypted with sops to an age key
keeps its metadata readable, hides every value, and decrypts back only with that key."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from conftest import need

PLAIN = "s3cr3t-p4ssw0rd-for-the-e2e-test"
TOKEN = "another-plaintext-token-value"
# Indented the way sops writes YAML, so the decrypted text must equal this exactly.
SECRET = f"""apiVersion: v1
kind: Secret
metadata:
    name: app-credentials
    namespace: shop
type: Opaque
data:
    password: {base64.b64encode(PLAIN.encode()).decode()}
stringData:
    token: {TOKEN}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    for tool in ("age", "age-keygen", "sops"):
        need(tool)
    # No key or .sops.yaml of the user's may take part, and sops must not ask GitHub for updates.
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "SOPS_DISABLE_VERSION_CHECK": "1",
    }


def run(
    argv: list[str], env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=check)


def keygen(path: Path, env: dict[str, str]) -> str:
    run(["age-keygen", "-o", str(path)], env, path.parent)
    return run(["age-keygen", "-y", str(path)], env, path.parent).stdout.strip()


def test_sops_encrypts_a_secret_to_an_age_key_and_decrypts_it_back(
    tmp_path: Path, env: dict[str, str]
) -> None:
    key = tmp_path / "age.agekey"
    recipient = keygen(key, env)
    assert recipient.startswith("age1"), recipient
    (tmp_path / "secret.yaml").write_text(SECRET)

    enc = run(
        [
            "sops",
            "--encrypt",
            "--age",
            recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
            "secret.yaml",
        ],
        {k: v for k, v in env.items() if not k.startswith("SOPS_AGE_")},
        tmp_path,
    ).stdout
    (tmp_path / "secret.enc.yaml").write_text(enc)

    for plain in (PLAIN, base64.b64encode(PLAIN.encode()).decode(), TOKEN):
        assert plain not in enc
    # Only data/stringData are encrypted: Flux and kustomize still see what the object is.
    for kept in ("kind: Secret", "name: app-credentials", "namespace: shop", "type: Opaque"):
        assert kept in enc, enc
    assert "ENC[AES256_GCM," in enc
    assert recipient in enc
    assert "encrypted_regex: ^(data|stringData)$" in enc

    dec = run(
        ["sops", "--decrypt", "secret.enc.yaml"],
        {**env, "SOPS_AGE_KEY_FILE": str(key)},
        tmp_path,
    ).stdout
    assert dec == SECRET

    # Without the key, or with another one, nothing comes back.
    other = tmp_path / "other.agekey"
    keygen(other, env)
    for key_file in (None, other):
        run_env = {k: v for k, v in env.items() if not k.startswith("SOPS_AGE_")}
        if key_file:
            run_env["SOPS_AGE_KEY_FILE"] = str(key_file)
        r = run(["sops", "--decrypt", "secret.enc.yaml"], run_env, tmp_path, check=False)
        assert r.returncode != 0, r.stdout
        assert PLAIN not in r.stdout and TOKEN not in r.stdout

    # A changed ciphertext is refused (sops' MAC), not decrypted into something else.
    lines = enc.splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if line.lstrip().startswith("token: ENC["))
    lines[i] = lines[i].replace("data:", "data:AAAA", 1)
    (tmp_path / "tampered.yaml").write_text("".join(lines))
    r = run(
        ["sops", "--decrypt", "tampered.yaml"],
        {**env, "SOPS_AGE_KEY_FILE": str(key)},
        tmp_path,
        check=False,
    )
    assert r.returncode != 0, r.stdout


def test_age_alone_round_trips(tmp_path: Path, env: dict[str, str]) -> None:
    # The key file Flux gets (a Secret with age.agekey) is what age itself accepts as identity.
    key = tmp_path / "age.agekey"
    recipient = keygen(key, env)
    (tmp_path / "msg").write_text(PLAIN)
    run(["age", "-r", recipient, "-o", "msg.age", "msg"], env, tmp_path)
    assert PLAIN.encode() not in (tmp_path / "msg.age").read_bytes()
    assert run(["age", "-d", "-i", str(key), "msg.age"], env, tmp_path).stdout == PLAIN
