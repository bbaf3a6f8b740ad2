#!/usr/bin/python3
"""golden.py -- `svcmapd -t` on a bad config must print exactly the expected errors.

Usage: golden.py SVCMAPD DATADIR bad/NAME.ini
Runs in DATADIR so the file name in messages is the relative path; compares
stderr with bad/NAME.err and requires exit status 1.
"""
import os
import subprocess
import sys

binary, datadir, ini = sys.argv[1:4]
binary = os.path.abspath(binary)
want = open(f"{datadir}/{ini[:-4]}.err").read()
run = subprocess.run([binary, "-t", "-c", ini], cwd=datadir, capture_output=True, text=True,
                     timeout=30)
ok = True
if run.returncode != 1:
    print(f"exit status {run.returncode}, want 1")
    ok = False
if run.stderr != want:
    print("stderr differs:\n--- want\n" + want + "--- got\n" + run.stderr + "---")
    ok = False
sys.exit(0 if ok else 1)
