#!/usr/bin/python3
"""print_golden.py -- `svcmapd --print` must print exactly the expected snippet.

Usage: print_golden.py SVCMAPD DATADIR MAPPING.ini FORM SERVER EXPECTED.out
Runs in DATADIR so the file name in the output is the relative path.
"""
import os
import subprocess
import sys

binary, datadir, ini, form, server, expected = sys.argv[1:7]
binary = os.path.abspath(binary)
want = open(os.path.join(datadir, expected)).read()
run = subprocess.run([binary, "-c", ini, "--print", form, server], cwd=datadir,
                     capture_output=True, text=True, timeout=30)
ok = run.returncode == 0 and run.stdout == want and run.stderr == ""
if not ok:
    print(f"exit status {run.returncode}; stderr: {run.stderr}")
    print("--- want\n" + want + "--- got\n" + run.stdout + "---")
sys.exit(0 if ok else 1)
