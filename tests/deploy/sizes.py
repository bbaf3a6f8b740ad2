#!/usr/bin/python3
"""sizes.py -- no file of src/ above 1,000 lines, no function above 80 (issue 12).

Usage: sizes.py REPO_ROOT

A newcomer should find the room for a change in a minute: a file that has
grown past 1,000 lines holds more than one concern, and a function past 80
lines more than one step. Tables (config_options[], a kind table) are data,
and are not functions: only bodies that open with `{` alone on a line after
a signature are measured, as .clang-format writes every function. A file or
function that must be longer goes in ALLOWED below with the reason.
"""
import glob
import os
import sys

from tap import Tap

TAP = Tap("sizes.py")
check = TAP.check

MAX_FILE = 1000
MAX_FUNCTION = 80
ALLOWED = {}  # "file.c:function": why


def functions(text):
    """(first line of the signature, name, length in lines) of each function."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i] == "{":
            j = i - 1
            while j > 0 and lines[j - 1].strip() and not lines[j - 1].startswith(
                    ("}", "/*", " *", "#")) and not lines[j - 1].endswith(";"):
                j -= 1
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            sig = " ".join(s.strip() for s in lines[j:i])
            name = sig.split("(")[0].split()[-1].lstrip("*") if "(" in sig else sig
            out.append((j + 1, name, k - i + 1))
            i = k
        i += 1
    return out


def main():
    root = sys.argv[1]
    # The measure itself, on a function of 82 lines and one of 3.
    body = "int f(void)\n{\n" + "    x();\n" * 80 + "}\n\nstatic int g(int a,\n" \
           "             int b)\n{\n    return a + b;\n}\n"
    check([(n, ln) for _, n, ln in functions(body)] == [("f", 82), ("g", 3)],
          "the measure finds each function and its length")

    files = sorted(glob.glob(os.path.join(root, "src", "*.c")))
    check(len(files) >= 20, f"{len(files)} files of src/ read")
    long_files, long_functions = [], []
    for f in files:
        text = open(f, encoding="utf-8").read()
        base = os.path.basename(f)
        n = text.count("\n")
        if n > MAX_FILE:
            long_files.append(f"{base}: {n} lines")
        for line, name, length in functions(text):
            if length > MAX_FUNCTION and f"{base}:{name}" not in ALLOWED:
                long_functions.append(f"{base}:{line}: {name}(), {length} lines")
    check(not long_files, f"no file of src/ above {MAX_FILE} lines", "; ".join(long_files))
    check(not long_functions, f"no function above {MAX_FUNCTION} lines",
          "; ".join(long_functions))
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
