#!/usr/bin/python3
"""includes.py -- no include circle among the modules of src/ and include/svcmapd/.

Usage: includes.py REPO_ROOT

A module is src/NAME.c with its header, include/svcmapd/NAME.h or
src/NAME.h; src/NAME_impl.h is NAME's private header. Module A uses module
B when a file of A includes a header of B (`#include "svcmapd/b.h"`, or
`#include "b.h"` beside it). A circle is A using B while B, directly or
through others, uses A: server.h including reload.h for a type while
reload.c includes server.h for a function was one. Such a pair can no
longer be read, tested or linked one without the other; the fix is to
move what both need into a module of its own, or to pass a callback.
Each circle found is printed with the include lines that make it.
"""
import glob
import os
import re
import sys

from tap import Tap

TAP = Tap("includes.py")
check = TAP.check

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(path):
    name = os.path.splitext(os.path.basename(path))[0]
    return name[: -len("_impl")] if name.endswith("_impl") else name


def includes(root):
    """{module: {used module: "file:line: #include ..."}} for every file."""
    files = sorted(glob.glob(os.path.join(root, "src", "*.[ch]")) +
                   glob.glob(os.path.join(root, "include", "svcmapd", "*.h")))
    uses = {}
    for f in files:
        rel = os.path.relpath(f, root)
        mod = module_of(f)
        uses.setdefault(mod, {})
        text = open(f, encoding="utf-8").read()
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            if inc.startswith("svcmapd/"):
                target = os.path.join(root, "include", inc)
            else:
                target = os.path.join(os.path.dirname(f), inc)
            if not os.path.exists(target):
                continue  # generated (config-build.h)
            used = module_of(target)
            if used != mod:
                line = text.count("\n", 0, m.start()) + 1
                uses[mod].setdefault(used, f'{rel}:{line}: #include "{inc}"')
    return files, uses


def circles(uses):
    """The strongly connected components of more than one module (Tarjan),
    each as a list of modules, sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(uses.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(uses):
        if v not in index:
            visit(v)
    return found


def path_back(uses, comp):
    """One circle through the first module of `comp`, as include lines."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:  # breadth first: the shortest way back to start
        v = queue.pop(0)
        for w in sorted(uses.get(v, {})):
            if w not in members:
                continue
            if w == start:
                lines = [uses[v][w]]
                while prev[v] is not None:
                    lines.append(uses[prev[v]][v])
                    v = prev[v]
                return list(reversed(lines))
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return []


def main():
    root = sys.argv[1]
    # The checker itself: a circle of three is found, a chain is not.
    check(circles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == [["a", "b", "c"]],
          "a circle through three modules is found")
    check(circles({"a": {"b": ""}, "b": {"c": ""}, "c": {}}) == [], "a chain is no circle")

    files, uses = includes(root)
    check(len(files) >= 20 and "reload" in uses and "server" in uses,
          f"{len(files)} files read from src/ and include/svcmapd/", root)
    found = circles(uses)
    detail = "".join("\n    " + " -> ".join(comp) + ":\n      " +
                     "\n      ".join(path_back(uses, comp)) for comp in found)
    check(not found, f"no include circle among {len(uses)} modules", detail)
    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
