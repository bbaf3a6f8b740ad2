#!/usr/bin/python3
"""import_golden.py -- `svcmapd import` on a file must print exactly the expected text.

Usage: import_golden.py SVCMAPD DATADIR NAME.json
Runs in DATADIR, so that file names in messages are relative paths.

- NAME.ini beside NAME.json: exit 0, nothing on stderr, stdout exactly
  NAME.ini; the same from standard input (`import -`) and with the items
  in reverse order (the output is sorted, not in input order); and
  `svcmapd -t -c NAME.ini` accepts it.
- NAME.err beside it (bad input, tests/data/import/bad/): exit 1, nothing
  on stdout, stderr exactly NAME.err.

IMPORT_GOLDEN_UPDATE=1 writes NAME.ini or NAME.err from what svcmapd
prints instead of comparing: read the difference before committing it.
"""
import json
import os
import subprocess
import sys
import tempfile

binary, datadir, name = sys.argv[1:4]
binary = os.path.abspath(binary)
base = os.path.join(datadir, name[:-5])
update = os.environ.get("IMPORT_GOLDEN_UPDATE") == "1"
failures = []


def run(args, stdin=None):
    return subprocess.run([binary] + args, cwd=datadir, input=stdin, capture_output=True,
                          timeout=60)


def expect(what, ok, detail=""):
    if not ok:
        failures.append(f"{what}\n{detail}")


first = run(["import", name])
if os.path.exists(base + ".err") or (update and "/bad/" in "/" + name):
    if update:
        open(base + ".err", "wb").write(first.stderr)
    want = open(base + ".err", "rb").read()
    expect(f"exit status {first.returncode}, want 1", first.returncode == 1)
    expect("stdout is not empty", first.stdout == b"", first.stdout[:500].decode(errors="replace"))
    expect("stderr differs", first.stderr == want,
           "--- want\n" + want.decode() + "--- got\n" + first.stderr.decode(errors="replace"))
else:
    if update:
        open(base + ".ini", "wb").write(first.stdout)
    want = open(base + ".ini", "rb").read()
    text = open(os.path.join(datadir, name), "rb").read()
    reversed_input = json.loads(text)
    reversed_input["items"].reverse()
    runs = [("import FILE", first), ("import -", run(["import", "-"], text)),
            ("import - (items reversed)", run(["import", "-"], json.dumps(reversed_input).encode()))]
    for what, r in runs:
        expect(f"{what}: exit status {r.returncode}, want 0", r.returncode == 0)
        expect(f"{what}: stderr is not empty", r.stderr == b"", r.stderr.decode(errors="replace"))
        expect(f"{what}: stdout differs", r.stdout == want,
               "--- want\n" + want.decode() + "--- got\n" + r.stdout.decode(errors="replace"))
    with tempfile.NamedTemporaryFile("wb", suffix=".ini") as f:
        f.write(first.stdout)
        f.flush()
        check = subprocess.run([binary, "-t", "-c", f.name], capture_output=True, text=True,
                               timeout=60)
        expect(f"svcmapd -t rejects the output (exit {check.returncode})",
               check.returncode == 0 and "error" not in check.stderr, check.stderr)
    long_lines = [l for l in first.stdout.decode().split("\n") if len(l) > 198]
    expect("lines over 198 characters", not long_lines, "\n".join(long_lines[:3]))

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
