#!/usr/bin/env python3
"""Prints the build targets that a ctest selection needs, one per line, or `all`.

Reads `ctest --show-only=json-v1` on stdin. A test whose command is an executable under
<build>/bin (where npa puts every program, named after its CMake target) needs that target.
Before a first build ctest cannot resolve the command; the test's name is used then, as
npa_add_test() names a test after its target, provided the Ninja build knows such a target.
Any other test (a script, a cmake -P driver, a program elsewhere) makes the answer `all`,
so that nothing a test needs is ever left unbuilt. Used by `make test-tsan` to build only the
suites ThreadSanitizer runs.
"""
import json
import os
import subprocess
import sys


def ninja_targets(build_dir: str) -> set:
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        return set()
    try:
        out = subprocess.run(["ninja", "-C", build_dir, "-t", "targets", "all"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return {line.split(":", 1)[0] for line in out.splitlines() if ":" in line}


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: ctest-targets.py <build-dir> < ctest-show-only.json", file=sys.stderr)
        return 2
    bin_dir = os.path.realpath(os.path.join(sys.argv[1], "bin"))
    tests = json.load(sys.stdin).get("tests", [])
    known = None
    targets = []
    for test in tests:
        command = test.get("command") or []
        if command:
            exe = os.path.realpath(command[0])
            if os.path.dirname(exe) != bin_dir:
                print("all")
                return 0
            name = os.path.basename(exe)
        else:
            if known is None:
                known = ninja_targets(sys.argv[1])
            name = test.get("name", "")
            if name not in known:
                print("all")
                return 0
        if name not in targets:
            targets.append(name)
    print("\n".join(targets) if targets else "all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
