#!/usr/bin/python3
"""readme_map.py -- the README's Development section names every file of src/.

Usage: readme_map.py REPO_ROOT

The section is the map of the code: a list item per file of src/, the
path first (`src/NAME.c`, or a pattern such as `src/import*.c` for a
module of several files), then what it is for. Every file of src/ must be
on such a line, every path or pattern of the map must name a file that
exists, and each line must say what its file is for.
"""
import fnmatch
import os
import re
import sys

from tap import Tap

TAP = Tap("readme_map.py")
check = TAP.check

ITEM = re.compile(r"^\s*[-*] `(src/[^`]+)`(.*)$")


def development_section(text):
    """The lines of the README's '## Development' section."""
    m = re.search(r"^## Development\n(.*?)(?=^## )", text, re.M | re.S)
    return m.group(1).split("\n") if m else []


def map_items(lines):
    """{path or pattern: what the line says of it} for each list item that
    starts with a backticked path under src/."""
    items = {}
    for line in lines:
        m = ITEM.match(line)
        if m:
            items[m.group(1)] = m.group(2).strip(" :-\u2014")
    return items


def main():
    root = sys.argv[1]
    files = sorted(f for f in os.listdir(os.path.join(root, "src")) if not f.startswith("."))
    items = map_items(development_section(open(os.path.join(root, "README.md")).read()))
    # The checker itself.
    check(map_items(["- `src/a.c` \u2014 does a", "- `src/b*.c`: b's", "  `src/c.c` no item"]) ==
          {"src/a.c": "does a", "src/b*.c": "b's"}, "list items of src/ paths are read")
    check(len(files) >= 20 and len(items) >= 20,
          f"{len(files)} files in src/, {len(items)} lines in the map")

    unnamed = [f for f in files if not any(fnmatch.fnmatch("src/" + f, p) for p in items)]
    check(not unnamed, "every file of src/ is in the README's map",
          "not named: " + ", ".join(unnamed))
    stale = [p for p in items if not any(fnmatch.fnmatch("src/" + f, p) for f in files)]
    check(not stale, "every path of the map is a file of src/", "no such file: " + ", ".join(stale))
    mute = [p for p, what in items.items() if len(what.split()) < 3]
    check(not mute, "every line of the map says what its file is for", ", ".join(mute))
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
