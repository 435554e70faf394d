#!/usr/bin/env python3
"""Each crate's `rust-version` is at least every dependency's (DESIGN §9).

Reads `cargo metadata` (the lock file's versions) on stdin, walks each workspace crate's
normal and build dependencies, and fails if one of them declares a newer Rust than the
crate does. It cannot prove the crate's own code builds on that Rust (no older toolchain
here); it catches the mistake the single crate made, a dependency that needs more.
"""
import json
import sys


def version(text):
    parts = [int(part) for part in (text or "0").split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.load(sys.stdin)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    failed = False
    for member in meta["workspace_members"]:
        crate = packages[member]
        declared = crate.get("rust_version")
        seen, stack = set(), [member]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            for dep in nodes[node]["deps"]:
                if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
                    stack.append(dep["pkg"])
        seen.discard(member)
        newest = max(seen, key=lambda p: version(packages[p].get("rust_version")))
        needs = packages[newest].get("rust_version")
        verdict = "ok"
        if declared is None or version(needs) > version(declared):
            verdict = "TOO LOW"
            failed = True
        print(f"    {crate['name']}: rust-version {declared}; its dependencies need "
              f"{needs} ({packages[newest]['name']}): {verdict}")
    sys.exit(1 if failed else 0)


main()
