#!/usr/bin/python3
"""summary.py -- counts individual test results of a `meson test` run.

Usage: summary.py BUILDDIR
Reads BUILDDIR/meson-logs/testlog.json: a TAP test counts each of its
`ok`/`not ok` lines, a pytest test (one with --junitxml=) each test case of
its JUnit file, any other test itself. A test that failed without saying which case failed
(a crash) counts one failure more. Prints the failures, then one last line
`N passed, N failed`; exits 1 if anything failed.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

builddir = sys.argv[1]
passed = failed = skipped = 0
failures = []

for line in open(os.path.join(builddir, "meson-logs", "testlog.json")):
    t = json.loads(line)
    name = t["name"].split(" / ")[-1]
    ok = t["result"] == "OK"
    junits = [a.split("=", 1)[1] for a in t.get("command", []) if a.startswith("--junitxml=")]
    if junits:
        junit = junits[0]
        cases_failed = 0
        try:
            root = ET.parse(junit).getroot()
            for case in root.iter("testcase"):
                label = f"{name}::{case.get('name')}"
                if case.find("failure") is not None or case.find("error") is not None:
                    failed += 1
                    cases_failed += 1
                    failures.append(label)
                elif case.find("skipped") is not None:
                    skipped += 1
                    failures.append(label + " (skipped)")
                else:
                    passed += 1
        except (OSError, ET.ParseError):
            pass
        if not ok and cases_failed == 0:
            failed += 1
            failures.append(f"{name} ({t['result']})")
    elif re.search(r"^(not )?ok \d+", t.get("stdout") or "", re.M):
        out = t.get("stdout") or ""
        p = len(re.findall(r"^ok \d+", out, re.M))
        f = re.findall(r"^not ok \d+.*$", out, re.M)
        passed += p
        failed += len(f)
        failures += [f"{name}: {x}" for x in f]
        if not ok and not f:
            failed += 1
            failures.append(f"{name} ({t['result']})")
    elif ok:
        passed += 1
    else:
        failed += 1
        failures.append(f"{name} ({t['result']})")

for f in failures:
    print("FAILED" if not f.endswith("(skipped)") else "SKIPPED", f)
if skipped:
    print(f"{skipped} skipped (not counted)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
