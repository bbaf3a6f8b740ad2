#!/usr/bin/python3
"""man.py -- the man pages against the code: every key `svcmapd --list-options`
prints (the rows of config_options[]) is documented in svcmapd.ini.5 in its
section, with its default and range; every option, --print form, signal and
exit status of `svcmapd --help` is in svcmapd.8, and nothing there that
--help lacks; every option, command and exit status of `svcmapctl --help` is
in svcmapctl.8, and nothing there that --help lacks; and the examples that
run svcmapd -t or --print print what the pages say.

Usage: man.py MAN_DIR SVCMAPD REPO_ROOT [SVCMAPCTL]
(SVCMAPCTL: by default the svcmapctl beside SVCMAPD)
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

from tap import Tap

TAP = Tap("man.py")
check = TAP.check


def options_table(svcmapd):
    """(section, name, type, default, min, max, choices) of each option, from
    `svcmapd --list-options`: section, key, type, default, MIN-MAX or
    choices separated by '|', help; tab-separated, one option per line."""
    out = subprocess.run([svcmapd, "--list-options"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) != 6 or not all(fields[:3]) or not fields[5]:
            check(False, f"--list-options: six fields, section, key, type and help given: {line!r}")
            continue
        section, name, typ, default, values, _help = fields
        lo, hi, choices = 0, 0, []
        if typ == "choice":
            choices = values.split("|")
        elif values:
            lo, hi = (int(v) for v in values.split("-"))
        rows.append((section, name, typ, default, lo, hi, choices))
    return rows


def msec_text(ms):
    """Milliseconds as svcmapd writes them (config_msec_text()): 1h, 5m, 2s, 500ms."""
    for unit, size in (("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def blocks(text, macro):
    """{header line: body} for each .Ss or .Sh block."""
    out = {}
    parts = re.split(rf"^\.{macro} (.*)$", text, flags=re.M)
    for i in range(1, len(parts), 2):
        out[parts[i]] = parts[i + 1]
    return out


def literal_blocks(text):
    return [b.replace("\\&", "").replace("\\e", "\\")
            for b in re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", text, re.M | re.S)]


def check_options(page_name, page, help_text):
    """Every long and short option of a --help text is documented in page, as `Fl \\-long`
    and `.It Fl x`, and every long option of the page exists in the --help text."""
    longs = sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", help_text)))
    shorts = sorted(set(re.findall(r"^\s+-([A-Za-z]),", help_text, re.M)))
    check(len(longs) >= 3, f"{page_name}: --help lists long options: {', '.join(longs)}")
    for o in longs:
        check(re.search(rf"\bFl \\-{re.escape(o)}\b", page) is not None, f"{page_name} documents --{o}")
    for o in shorts:
        check(re.search(rf"^\.It Fl {o}\b", page, re.M) is not None, f"{page_name} documents -{o}")
    for o in re.findall(r"\bFl \\-([a-z][a-z-]+)", page):
        check(o in longs, f"{page_name}'s --{o} exists in --help")
    return longs


def check_exit_statuses(page_name, sections, help_text):
    status = re.search(r"Exit status: (.*?)\.\n\n?", help_text, re.S)
    codes = re.findall(r"(\d+) [a-z]", status.group(1)) if status else []
    check(len(codes) >= 4, f"{page_name}: --help gives exit statuses {', '.join(codes)}")
    for code in codes:
        check(re.search(rf"^\.It {code}$", sections.get("EXIT STATUS", ""), re.M) is not None,
              f"{page_name} EXIT STATUS has {code}")


def check_svcmapctl(man_dir, svcmapctl):
    """svcmapctl.8 against `svcmapctl --help`: options, commands, exit statuses."""
    page = open(os.path.join(man_dir, "svcmapctl.8"), encoding="utf-8").read()
    help_text = subprocess.run([svcmapctl, "--help"], capture_output=True, text=True,
                               check=True).stdout
    check_options("svcmapctl.8", page, help_text)
    commands = re.search(r"^Commands:\n((?:  .*\n)+)", help_text, re.M)
    names = re.findall(r"^  (\w+) ", commands.group(1), re.M) if commands else []
    check(len(names) >= 4, f"svcmapctl --help lists commands: {', '.join(names)}")
    described = blocks(page, "Sh").get("DESCRIPTION", "")
    for name in names:
        check(re.search(rf"^\.It Cm {name}$", described, re.M) is not None,
              f"svcmapctl.8 documents the command {name}")
    check_exit_statuses("svcmapctl.8", blocks(page, "Sh"), help_text)


def main():
    man_dir, svcmapd, root = sys.argv[1:4]
    svcmapd = os.path.abspath(svcmapd)
    svcmapctl = os.path.abspath(sys.argv[4] if len(sys.argv) > 4
                                else os.path.join(os.path.dirname(svcmapd), "svcmapctl"))
    page8 = open(os.path.join(man_dir, "svcmapd.8"), encoding="utf-8").read()
    page5 = open(os.path.join(man_dir, "svcmapd.ini.5"), encoding="utf-8").read()

    # ---- svcmapd.ini.5: every key, in its section, with default and range ----
    rows = options_table(svcmapd)
    check(len(rows) >= 19, f"read {len(rows)} options from svcmapd --list-options")
    subsections = blocks(page5, "Ss")
    documented = {}
    for header, body in subsections.items():
        m = re.search(r"\[(\w+)\]", header)
        if m:
            documented[m.group(1)] = body
    for section, name, typ, default, lo, hi, choices in rows:
        body = documented.get(section)
        if body is None:
            check(False, f"[{section}] has a subsection in svcmapd.ini.5")
            documented[section] = ""
            continue
        m = re.search(rf"^\.It Cm {re.escape(name)}\b(.*?)(?=^\.It Cm |^\.El)", body, re.M | re.S)
        check(m is not None, f"[{section}] {name}: documented")
        if not m:
            continue
        entry = m.group(0)
        check("Default" in entry or (typ == "choice" and "default" in entry),
              f"[{section}] {name}: gives its default")
        want = default if default else "none"
        check(re.search(rf"(Default:\s*\n?\.(Li|Pa) {re.escape(want)}\b|Default: {want}\b)", entry)
              is not None, f"[{section}] {name}: default {want!r}")
        if typ in ("number", "number-or-auto"):
            check(re.search(rf"\b{lo} to {hi}\b", entry) is not None, f"[{section}] {name}: range {lo} to {hi}")
        elif typ == "duration":
            rng = f"{lo}s to {hi // 3600}h"
            check(rng in entry, f"[{section}] {name}: range {rng}")
        elif typ == "duration-ms":
            rng = f"{msec_text(lo)} to {msec_text(hi)}"
            check(rng in entry, f"[{section}] {name}: range {rng}")
        for c in choices:
            check(re.search(rf"\b{re.escape(c)}\b", entry) is not None, f"[{section}] {name}: choice {c}")
    known = {(s, n) for s, n, *_ in rows}
    for section, body in documented.items():
        if section == "namespace":
            continue
        for name in re.findall(r"^\.It Cm ([\w-]+)", body, re.M):
            check((section, name) in known, f"[{section}] {name}: documented key is in --list-options")

    # ---- svcmapd.8 against --help ----
    help_text = subprocess.run([svcmapd, "--help"], capture_output=True, text=True, check=True).stdout
    check_options("svcmapd.8", page8, help_text)
    forms = re.search(r"FORM is ((?:[\w-]+, )*[\w-]+ or [\w-]+)", re.sub(r"\s+", " ", help_text))
    if forms:
        for f in re.split(r", | or ", forms.group(1)):
            check(re.search(rf"^\.It Cm {re.escape(f)}$", page8, re.M) is not None,
                  f"svcmapd.8 documents --print {f}")
    sections8 = blocks(page8, "Sh")
    for sig in sorted(set(re.findall(r"\bSIG[A-Z]+\b", help_text))):
        check(f"Dv {sig}" in sections8.get("SIGNALS", ""), f"svcmapd.8 SIGNALS has {sig}")
    check_exit_statuses("svcmapd.8", sections8, help_text)
    check_svcmapctl(man_dir, svcmapctl)

    # ---- examples that only read files: they print what the pages say ----
    with tempfile.TemporaryDirectory() as tmp:
        for page, text in (("svcmapd.8", page8), ("svcmapd.ini.5", page5)):
            for block in literal_blocks(text):
                lines = block.split("\n")
                i = 0
                while i < len(lines):
                    cmd = lines[i]
                    j = i + 1
                    while j < len(lines) and not lines[j].startswith("$ ") and lines[j] != "...":
                        j += 1
                    expected = [l for l in lines[i + 1:j] if l != ""]
                    i = j + (1 if j < len(lines) and lines[j] == "..." else 0)
                    if cmd.startswith("$ cat "):
                        with open(os.path.join(tmp, cmd[6:].strip()), "w", encoding="utf-8") as f:
                            f.write("\n".join(expected) + "\n")
                        continue
                    if not cmd.startswith("$ svcmapd ") or re.search(r"[|&;<>$]", cmd[2:]):
                        continue
                    argv = shlex.split(cmd[2:])
                    if "-t" not in argv and "--print" not in argv and "-p" not in argv:
                        continue
                    cfg = argv[argv.index("-c") + 1] if "-c" in argv else None
                    cwd = root if cfg and os.path.exists(os.path.join(root, cfg)) else tmp
                    r = subprocess.run([svcmapd] + argv[1:], capture_output=True, text=True, cwd=cwd)
                    got = [l for l in (r.stdout + r.stderr).split("\n") if l != ""]
                    check(got[:len(expected)] == expected, f"{page}: `{cmd[2:]}` prints what the page shows",
                          "\n  page: " + "\n  page: ".join(expected) + "\n  real: " + "\n  real: ".join(got[:len(expected)]))

        # The example file of svcmapd.ini.5 is a valid file.
        ex = blocks(page5, "Sh").get("EXAMPLES", "")
        first = literal_blocks(ex)[0] if literal_blocks(ex) else ""
        path = os.path.join(tmp, "example.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(first)
        r = subprocess.run([svcmapd, "-t", "-c", path], capture_output=True, text=True)
        check(first.startswith("[server]") and r.returncode == 0 and ": warning:" not in r.stderr,
              "svcmapd.ini.5: the example file passes svcmapd -t without warnings", (r.stdout + r.stderr).strip())

    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
