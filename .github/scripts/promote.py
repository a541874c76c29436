#!/usr/bin/env python3
"""Rewrite a production image setter in the Flux tree (used by .github/workflows/promote.yml).

pin:   tag: "1.2.3" # {"$imagepolicy": "flux-system:<c>-production:tag"}
   ->  tag: "1.2.4" # {"outrigger-pin": "<c>-production"}      (image automation ignores it)
unpin: the reverse, with the given version, so automation takes over from there.

usage: promote.py [--root DIR] COMPONENT VERSION pin|unpin
Prints each changed file; exits 1 when no setter for COMPONENT exists.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def rewrite(root: pathlib.Path, component: str, version: str, pin: bool) -> list[pathlib.Path]:
    policy = f'{{"$imagepolicy": "flux-system:{component}-production:tag"}}'
    pinned = f'{{"outrigger-pin": "{component}-production"}}'
    line_re = re.compile(
        r'^(?P<head>\s*[\w-]+:\s*)"?[^"#\s]*"?\s*# (?:' + re.escape(policy) + "|" + re.escape(pinned) + r")\s*$"
    )
    marker = pinned if pin else policy
    changed = []
    for path in sorted(root.rglob("*.yaml")):
        lines = path.read_text().splitlines(keepends=True)
        hit = False
        for i, line in enumerate(lines):
            m = line_re.match(line.rstrip("\n"))
            if m:
                lines[i] = f'{m["head"]}"{version}" # {marker}\n'
                hit = True
        if hit:
            path.write_text("".join(lines))
            changed.append(path)
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="flux", type=pathlib.Path)
    ap.add_argument("component")
    ap.add_argument("version")
    ap.add_argument("action", choices=["pin", "unpin"])
    args = ap.parse_args()
    if not SEMVER.match(args.version):
        print(
            f"promote: version must be X.Y.Z (a release), got {args.version!r}",
            file=sys.stderr,
        )
        return 2
    found = rewrite(args.root, args.component, args.version, args.action == "pin")
    if not found:
        print(
            f"promote: no production setter for {args.component} under {args.root}",
            file=sys.stderr,
        )
        return 1
    for path in found:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
