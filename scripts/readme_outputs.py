#!/usr/bin/env python3
"""Re-runs every `$ gradfit ...` line in README.md's console blocks and pastes the real output
below it, so the README shows what the current binary prints.

Usage (from the repository root): cargo build --release && python3 scripts/readme_outputs.py
Commands run in a temporary directory with problems/ linked in, so files they write (cmp.svg,
ls.csv) do not land in the repository. Timings differ from run to run; everything else should
not change.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "gradfit")


def run(command, cwd):
    args = shlex.split(command)
    args[0] = BINARY
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    return (out.stdout + out.stderr).rstrip("\n")


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` first")
    path = os.path.join(ROOT, "README.md")
    text = open(path, encoding="utf-8").read()
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(os.path.join(ROOT, "problems"), os.path.join(tmp, "problems"))

        def block(match):
            lines = match.group(1).split("\n")
            result = []
            for line in lines:
                if line.startswith("$ gradfit"):
                    result.append(line)
                    result.append(run(line[2:], tmp))
            return "```console\n" + "\n".join(result) + "\n```"

        text = re.sub(r"```console\n(.*?)\n```", block, text, flags=re.S)
    open(path, "w", encoding="utf-8").write(text)


if __name__ == "__main__":
    main()
