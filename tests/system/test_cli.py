"""test_cli.py -- SPEC 1 (`-t` and its diagnostics) and SPEC 5 (options, exit codes,
signals): 0 ok, 1 bad config, 2 bad usage, 3 runtime failure."""

import os
import signal
import textwrap
from pathlib import Path

import pytest

from conftest import DATA, PortBlocker, error_lines, run_cli, svc, svcmapd_path, check_answer

GOOD = textwrap.dedent("""\
    [server]
    listen = 127.0.0.1:5353

    [namespace a]
    ok = 10.0.0.1
    """)


def write(tmp_path, text, name="test.ini"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- options


def test_version(svcmapd_bin):
    rc, out, err = run_cli(["-V"])
    assert rc == 0, f"-V exit {rc}, stderr: {err}"
    assert out.splitlines()[:1] == ["svcmapd 0.1.0"], f"-V printed {out!r}"


def test_help(svcmapd_bin):
    rc, out, err = run_cli(["-h"])
    assert rc == 0, f"-h exit {rc}, stderr: {err}"
    assert "usage" in out.lower(), f"-h should print usage on stdout, got {out!r}"
    assert "-c" in out and "-t" in out, f"usage should mention -c and -t: {out!r}"


def test_list_options(svcmapd_bin, tmp_path):
    """--list-options prints the parser's own table: every key it lists, set
    to the default it lists, in its section, is a valid file; one more key
    is not."""
    rc, out, err = run_cli(["--list-options"])
    assert rc == 0 and err == "", f"--list-options exit {rc}, stderr: {err!r}"
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) >= 26 and all(len(r) == 6 for r in rows), out
    assert ["server", "zone", "domain", "cluster.local", ""] == rows[0][:5], rows[0]
    # /etc/resolv.conf, the default servers, is never read in a test
    sections = {"upstream": ["servers = none"]}
    for section, key, _type, default, _values, help_ in rows:
        assert help_, f"[{section}] {key} has no help"
        if default and (section, key) != ("upstream", "servers"):
            sections.setdefault(section, []).append(f"{key} = {default}")
    text = "".join(f"[{s}]\n" + "\n".join(keys) + "\n" for s, keys in sections.items())
    text += "[namespace a]\nok = 10.0.0.1\n"
    rc, out, err = run_cli(["-t", "-c", str(write(tmp_path, text))])
    assert rc == 0 and "error" not in err, f"the listed defaults are not valid:\n{text}\n{err}"
    rc, out, err = run_cli(["-t", "-c", str(write(tmp_path, "[server]\nno-such-key = 1\n"))])
    assert rc == 1 and "unknown key 'no-such-key'" in err, err


@pytest.mark.parametrize("args", [["-Z"], ["-c"], ["-t", "-c"], ["--no-such-option"]])
def test_bad_usage_exit_2(svcmapd_bin, args):
    rc, out, err = run_cli(args)
    assert rc == 2, f"svcmapd {' '.join(args)}: expected exit 2, got {rc}; stderr: {err!r}"
    assert err.strip(), "bad usage should say something on stderr"


# ---------------------------------------------------------------- -t


def test_check_valid_file(svcmapd_bin, tmp_path):
    path = write(tmp_path, (DATA / "standard.ini").read_text().replace("@PORT@", "5353"))
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 0, f"standard.ini rejected (exit {rc}):\n{err}"
    assert "error" not in err.lower(), err


def test_check_spec_example_is_valid(svcmapd_bin, tmp_path):
    """The example of SPEC section 1, verbatim."""
    path = write(tmp_path, textwrap.dedent("""\
        [server]
        zone   = cluster.local          ; names answered: <service>.<namespace>.svc.<zone>
        listen = 127.0.0.1:5353         ; comma-separated; [::1]:5353 for IPv6; port 53 in production
        ttl    = 5                      ; 0..3600, CoreDNS's default is 5

        [namespace test-1]
        mysql  = mysql.test-1.example.com          ; hostname          -> CNAME (ExternalName)

        [namespace test-2]
        mysql  = 192.168.1.10                      ; IP                -> A (what CoreDNS leaves NXDOMAIN)
        redis  = 192.168.1.20, 192.168.1.21        ; several addresses -> A/AAAA set (headless + Endpoints)
        pg     = 192.168.1.30:5433                 ; IP:port           -> A + SRV with the real port
        ldap   = 10.0.0.5 2001:db8::5 srv=_ldap._tcp ttl=30
        """))
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 0, f"SPEC's own example rejected (exit {rc}):\n{err}"


def test_check_opens_no_sockets(svcmapd_bin, tmp_path):
    """-t on a file whose listen port is taken still succeeds: it binds nothing."""
    b = PortBlocker()
    try:
        path = write(tmp_path, GOOD.replace("5353", str(b.port)))
        rc, out, err = run_cli(["-t", "-c", str(path)])
        assert rc == 0, f"exit {rc}: {err}"
    finally:
        b.close()


MULTI = [
    ("[server]", False),
    ("zone = cluster.local", False),
    ("listen = 127.0.0.1:5353", False),
    ("colour = blue", True),                                        # unknown key
    ("", False),
    ("[namespace test-1]", False),
    ("db = 10.0.0.1", False),
    ("db = 10.0.0.2", True),                                        # duplicate service
    ("bad = 2001:db8::zz", True),                                   # bad address
    ("hi = 10.0.0.3:70000", True),                                  # port out of range
    ("mixed = 10.0.0.4, db.example.com", True),                     # hostname mixed with IPs
    ("self = self.test-1.svc.cluster.local", True),                 # target is its own name
    ("dangling = nowhere.test-1.svc.cluster.local", True),          # in-zone dangling target
    ("fine = db.test-1.svc.cluster.local", False),
    ("", False),
    ("[bogus]", True),                                              # unknown section
    ("foo = bar", None),                                            # may be reported too
]


@pytest.mark.parametrize("relative", [False, True])
def test_check_reports_every_error(svcmapd_bin, tmp_path, relative):
    """All errors, each as FILE:LINE: error: ..., FILE as given on the command line."""
    path = write(tmp_path, "\n".join(line for line, _ in MULTI) + "\n", "multi.ini")
    arg = "multi.ini" if relative else str(path)
    rc, out, err = run_cli(["-t", "-c", arg], cwd=tmp_path)
    assert rc == 1, f"expected exit 1, got {rc}; stderr:\n{err}"
    want = {i + 1 for i, (_, bad) in enumerate(MULTI) if bad}
    optional = {i + 1 for i, (_, bad) in enumerate(MULTI) if bad is None}
    got = set(error_lines(err, arg))
    missing, extra = want - got, got - want - optional
    assert not missing and not extra, (
        f"error lines: expected {sorted(want)}, got {sorted(got)} "
        f"(missing {sorted(missing)}, unexpected {sorted(extra)}); stderr:\n{err}")


# One error each: (lines after the GOOD header, line number of the error).
SINGLE = {
    "ttl-too-big": ("[server]\nlisten = 127.0.0.1:5353\nttl = 3601\n", 3),
    "ttl-negative": ("[server]\nlisten = 127.0.0.1:5353\nttl = -1\n", 3),
    "ttl-not-number": ("[server]\nlisten = 127.0.0.1:5353\nttl = five\n", 3),
    "idle-zero": ("[server]\nlisten = 127.0.0.1:5353\ntcp-idle-timeout = 0\n", 3),
    "idle-too-big": ("[server]\nlisten = 127.0.0.1:5353\ntcp-idle-timeout = 3601\n", 3),
    "maxconn-zero": ("[server]\nlisten = 127.0.0.1:5353\ntcp-max-connections = 0\n", 3),
    "maxconn-too-big": ("[server]\nlisten = 127.0.0.1:5353\ntcp-max-connections = 65536\n", 3),
    "listen-port": ("[server]\nlisten = 127.0.0.1:70000\n", 2),
    "listen-addr": ("[server]\nlisten = 127.0.0.1:53, 300.1.2.3:53\n", 2),
    "server-dup-key": ("[server]\nlisten = 127.0.0.1:5353\nttl = 5\nttl = 6\n", 4),
    "unknown-key": ("[server]\nlisten = 127.0.0.1:5353\nupstream = 10.0.0.1\n", 3),
    "key-before-section": ("stray = 1\n[server]\nlisten = 127.0.0.1:5353\n", 1),
}
NS = "[server]\nlisten = 127.0.0.1:5353\n[namespace a]\nok = 10.0.0.1\nweb = 10.0.0.2:80\n"
SINGLE.update({
    "service-dup": (NS + "ok = 10.0.0.9\n", 6),
    "service-name-underscore": (NS + "bad_name = 10.0.0.3\n", 6),
    "service-name-dash": (NS + "-bad = 10.0.0.3\n", 6),
    "bad-ipv4-in-list": (NS + "x = 10.0.0.1, 10.0.0.256\n", 6),
    "bad-ipv6": (NS + "x = 2001:db8::zz\n", 6),
    "bad-ipv6-triple-colon": (NS + "x = 2001:db8:::1\n", 6),
    "port-too-big": (NS + "x = 10.0.0.3:65536\n", 6),
    "port-v6-too-big": (NS + "x = [2001:db8::3]:99999\n", 6),
    "ports-mixed": (NS + "x = 10.0.0.3:80 10.0.0.4\n", 6),
    "two-hostnames": (NS + "x = a.example.com b.example.com\n", 6),
    "hostname-and-ip": (NS + "x = a.example.com 10.0.0.3\n", 6),
    "self-target": (NS + "x = x.a.svc.cluster.local\n", 6),
    "self-target-dot": (NS + "x = X.A.svc.cluster.local.\n", 6),
    "dangling-service": (NS + "x = nothere.a.svc.cluster.local\n", 6),
    "dangling-namespace": (NS + "x = ok.nons.svc.cluster.local\n", 6),
    "dangling-zone-name": (NS + "x = foo.cluster.local\n", 6),
    "dangling-endpoint": (NS + "x = 10-0-0-1.ok.a.svc.cluster.local\n", 6),
    "srv-bad-proto": (NS + "x = 10.0.0.3:80 srv=_x._foo\n", 6),
    "srv-bad-syntax": (NS + "x = 10.0.0.3:80 srv=x.tcp\n", 6),
    "option-ttl-too-big": (NS + "x = 10.0.0.3 ttl=3601\n", 6),
    "option-ttl-bad": (NS + "x = 10.0.0.3 ttl=abc\n", 6),
    "option-unknown": (NS + "x = 10.0.0.3 weight=5\n", 6),
    "empty-value": (NS + "x =\n", 6),
    "namespace-no-name": (NS + "[namespace]\ny = 10.0.0.5\n", 6),
    "namespace-bad-name": (NS + "[namespace Bad_NS]\ny = 10.0.0.5\n", 6),
    "namespace-twice": (NS + "[namespace a]\ny = 10.0.0.5\n", 6),
    "unknown-section": (NS + "[bogus]\ny = 1\n", 6),
})

SECTION_CASES = {"namespace-no-name", "namespace-bad-name", "namespace-twice", "unknown-section"}


@pytest.mark.parametrize("case", sorted(SINGLE))
def test_check_single_error(svcmapd_bin, tmp_path, case):
    text, line = SINGLE[case]
    path = write(tmp_path, text)
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1, f"{case}: expected exit 1, got {rc}; stderr:\n{err}"
    got = error_lines(err, path)
    # Errors inside an unusable section may also be reported for its key line.
    allowed = {line, line + 1} if case in SECTION_CASES else {line}
    assert line in got and set(got) <= allowed, (
        f"{case}: expected an error at line {line} only, got lines {got}; stderr:\n{err}")


def test_check_missing_file(svcmapd_bin, tmp_path):
    path = tmp_path / "does-not-exist.ini"
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1, f"expected exit 1, got {rc}; stderr:\n{err}"
    assert str(path) in err, f"the error should name the file: {err!r}"


# ---------------------------------------------------------------- running


def test_run_bad_config_exit_1(svcmapd_bin, tmp_path):
    path = write(tmp_path, NS + "ok = 10.0.0.9\n")
    rc, out, err = run_cli(["-c", str(path)])
    assert rc == 1, f"expected exit 1, got {rc}; stderr:\n{err}"
    assert error_lines(err, path) == [6], err


def test_run_bad_config_logs_errors_at_error_level(svcmapd_bin, tmp_path):
    """Each diagnostic is logged at its own severity, whatever its text says: an error
    quoting ': warning: ' from the file is an [ERROR] line, not a [WARNING] one."""
    path = write(tmp_path, GOOD + "[x: warning: y]\n")
    rc, out, err = run_cli(["-c", str(path)])
    assert rc == 1, f"expected exit 1, got {rc}; stderr:\n{err}"
    lines = [ln for ln in err.splitlines() if "unknown section '[x: warning: y]'" in ln]
    assert len(lines) == 1 and "[ERROR]" in lines[0], err


def test_no_thread_exit_3(svcmapd_bin, tmp_path):
    """No thread to be had (a container at its pids limit; the nothread shim): start-up
    fails with exit 3 and says why, and does not crash on the way out."""
    shim = Path(os.environ.get("SVCMAPD_NOTHREAD") or
                svcmapd_path().parent / "tests" / "libnothread.so")
    assert shim.is_file(), f"the nothread shim is not built: {shim}"
    path = write(tmp_path, GOOD)
    # the sanitizer build: its runtime need not be first any more
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    rc, out, err = run_cli(["-c", str(path)],
                           env={**os.environ, "LD_PRELOAD": str(shim), "ASAN_OPTIONS": asan})
    assert rc == 3, f"expected exit 3, got {rc}; stderr:\n{err}"
    assert "cannot start the loader thread" in err, err


def test_bind_failure_exit_3(svcmapd_bin, tmp_path, blocker):
    path = write(tmp_path, GOOD.replace("5353", str(blocker.port)))
    rc, out, err = run_cli(["-c", str(path)])
    assert rc == 3, f"expected exit 3 (cannot bind 127.0.0.1:{blocker.port}), got {rc}; stderr:\n{err}"
    assert str(blocker.port) in err, f"the error should name the address: {err!r}"


def test_bind_failure_second_address_exit_3(svcmapd_bin, tmp_path, blocker):
    """The first address binds, the second cannot: still exit 3, nothing half-running."""
    other = PortBlocker()
    free = other.port
    other.close()
    path = write(tmp_path, GOOD.replace("127.0.0.1:5353",
                                        f"127.0.0.1:{free}, 127.0.0.1:{blocker.port}"))
    rc, out, err = run_cli(["-c", str(path)])
    assert rc == 3, f"expected exit 3, got {rc}; stderr:\n{err}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(svcmapd, sig):
    s = svcmapd("[server]\nlisten = 127.0.0.1:@PORT@\n[namespace a]\nb = 10.0.0.1\n")
    check_answer(s.ask(svc("b.a"), "A"), [f"{svc('b.a')} 5 IN A 10.0.0.1"])
    rc = s.stop(sig)
    assert rc == 0, f"{signal.Signals(sig).name}: exit status {rc}; stderr:\n{s.log()}"
