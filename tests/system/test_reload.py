"""test_reload.py -- SPEC 4: SIGHUP reload (atomic, all-or-nothing), SOA serial rules,
and reload under query load."""

import os
import random
import socket
import struct
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype

from conftest import (ZONE, check_answer, check_nodata, check_nxdomain, check_soa, make_query,
                      svc)

BASE = """# reload test mapping
[server]
listen = 127.0.0.1:@PORT@
ttl = {ttl}

[namespace a]
{services}
"""


def cfg(services, ttl=5):
    return BASE.format(ttl=ttl, services=services)


def line_with(text, needle):
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one line with {needle!r}, got {lines}"
    return lines[0]


def test_good_reload(svcmapd):
    s = svcmapd(cfg("x = 10.0.0.1\ny = 10.0.0.2\n"))
    s0 = s.serial()
    outcome, new = s.reload(cfg("x = 10.0.0.9\nz = 10.0.0.3:80\n"))
    assert outcome == "ok", new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.9"])
    check_answer(s.ask(svc("z.a"), "SRV"), [f"{svc('z.a')} 5 IN SRV 0 100 80 {svc('z.a')}"],
                 additional=[f"{svc('z.a')} 5 IN A 10.0.0.3"])
    s1 = s.serial()
    check_nxdomain(s.ask(svc("y.a"), "A"), serial=s1)
    assert s1 > s0, f"serial must increase after a reload that changed data: {s0} -> {s1}"
    line = line_with(new, "reload: ok")
    assert str(s1) in line, f"the reload line should give the new serial {s1}: {line!r}"
    assert any(c.isdigit() for c in line.replace(str(s1), "")), f"no counts in {line!r}"


def test_reload_identical_data_keeps_serial(svcmapd):
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    s0 = s.serial()
    outcome, new = s.reload()
    assert outcome == "ok", new
    assert s.serial() == s0, "serial changed though the data did not"
    # Same data written differently (comments, spacing, order of addresses): same serial.
    s.write_config("; rewritten\n" + cfg("x   =   10.0.0.1    ; same address\n"))
    outcome, new = s.reload()
    assert outcome == "ok", new
    assert s.serial() == s0, "serial changed though only comments and spacing did"
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.1"])


def test_serial_strictly_increases(svcmapd):
    """Several changing reloads within the same second: max(now, previous + 1)."""
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    serials = [s.serial()]
    for i in range(2, 6):
        outcome, new = s.reload(cfg(f"x = 10.0.0.{i}\n"))
        assert outcome == "ok", new
        check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.{i}"])
        serials.append(s.serial())
    assert all(b > a for a, b in zip(serials, serials[1:])), f"serials not increasing: {serials}"


def test_bad_reload_keeps_old_data(svcmapd):
    s = svcmapd(cfg("x = 10.0.0.1\ny = 10.0.0.2\n"))
    s0 = s.serial()
    bad = cfg("x = 10.0.0.9\nx = 10.0.0.8\nw = 2001:db8::zz\nv = 10.0.0.4\n")
    outcome, new = s.reload(bad)
    assert outcome == "failed", new
    # x, x (duplicate), w (bad address), v: errors on the second and third lines only.
    for text in ("x = 10.0.0.8", "w = 2001:db8::zz"):
        line = s.line_of(text)
        assert f"{s.config_path}:{line}: error:" in new, (
            f"missing '{s.config_path}:{line}: error:' in the reload log:\n{new}")
    for text in ("x = 10.0.0.9", "v = 10.0.0.4"):
        assert f"{s.config_path}:{s.line_of(text)}: error:" not in new, new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.1"])
    check_answer(s.ask(svc("y.a"), "A"), [f"{svc('y.a')} 5 IN A 10.0.0.2"])
    check_nxdomain(s.ask(svc("v.a"), "A"), serial=s0)
    assert s.serial() == s0
    # And a good file afterwards is taken.
    outcome, new = s.reload(cfg("x = 10.0.0.7\n"))
    assert outcome == "ok", new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.7"])
    assert s.serial() > s0


def test_bad_reload_dangling_target_keeps_old_data(svcmapd):
    """An error found while compiling (not parsing) also changes nothing."""
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    outcome, new = s.reload(cfg("x = 10.0.0.2\nc = gone.a.svc.cluster.local\n"))
    assert outcome == "failed", new
    assert f"{s.config_path}:{s.line_of('c = gone')}: error:" in new, new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.1"])


def test_reload_error_logged_at_error_level(svcmapd):
    """A reload's diagnostics are logged at their own severity: an error quoting
    ': warning: ' from the file is an [ERROR] line."""
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    outcome, new = s.reload(cfg("x = 10.0.0.1\n") + "[x: warning: y]\n")
    assert outcome == "failed", new
    line = line_with(new, "unknown section '[x: warning: y]'")
    assert "[ERROR]" in line, line


def test_reload_missing_file_keeps_old_data(svcmapd):
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    os.unlink(s.config_path)
    outcome, new = s.reload()
    assert outcome == "failed", new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A 10.0.0.1"])


def test_reload_changes_ttl(svcmapd):
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    outcome, new = s.reload(cfg("x = 10.0.0.1\n", ttl=600))
    assert outcome == "ok", new
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 600 IN A 10.0.0.1"])
    check_soa(s.ask(ZONE, "SOA").answer[0], ZONE, 600)
    check_nodata(s.ask(svc("x.a"), "AAAA"), ttl=600)


def test_reload_listen_change_needs_restart(svcmapd):
    """Settings that need new sockets are reported as needing a restart; the server
    keeps answering on its old socket."""
    s = svcmapd(cfg("x = 10.0.0.1\n"))
    other = s.port + 1 if s.port < 65535 else s.port - 1
    text = s.config_path.read_text().replace(f"127.0.0.1:{s.port}", f"127.0.0.1:{other}")
    outcome, new = s.reload(text.replace("10.0.0.1", "10.0.0.2"))
    assert "restart" in new.lower(), f"no 'restart' notice for a listen change:\n{new}"
    # Either way the old socket keeps serving: the new data if the rest was taken,
    # the old data if the reload was refused as a whole.
    addr = "10.0.0.2" if outcome == "ok" else "10.0.0.1"
    check_answer(s.ask(svc("x.a"), "A"), [f"{svc('x.a')} 5 IN A {addr}"])


# ---------------------------------------------------------------- under load

LOAD_A = """[server]
listen = 127.0.0.1:@PORT@
ttl = 5

[namespace load]
flip = 10.9.0.1, 10.9.0.2 ttl=7
port = 10.9.2.1:1000, 10.9.2.2:1000 ttl=7
only-a = 10.9.3.1
"""
LOAD_B = """[server]
listen = 127.0.0.1:@PORT@
ttl = 5

[namespace load]
flip = 10.9.1.1, 10.9.1.2 ttl=9
port = 10.9.4.1:2000, 10.9.4.2:2000 ttl=9
only-b = 10.9.3.2
"""
LOAD_BAD = LOAD_A + "flip = 10.9.9.9\n"

FLIP, PORT, ONLY_A, ONLY_B = (svc(n + ".load") for n in ("flip", "port", "only-a", "only-b"))


def expected_views():
    """For each query, the exact reply content under file A and under file B."""
    def ep(ip):
        return ip.replace(".", "-") + "." + PORT

    a = {
        (FLIP, "A"): ("NOERROR", [f"{FLIP} 7 IN A 10.9.0.1", f"{FLIP} 7 IN A 10.9.0.2"], []),
        (PORT, "SRV"): ("NOERROR", [f"{PORT} 7 IN SRV 0 50 1000 {ep('10.9.2.1')}",
                                    f"{PORT} 7 IN SRV 0 50 1000 {ep('10.9.2.2')}"],
                        [f"{ep('10.9.2.1')} 7 IN A 10.9.2.1", f"{ep('10.9.2.2')} 7 IN A 10.9.2.2"]),
        (ONLY_A, "A"): ("NOERROR", [f"{ONLY_A} 5 IN A 10.9.3.1"], []),
        (ONLY_B, "A"): ("NXDOMAIN", [], []),
    }
    b = {
        (FLIP, "A"): ("NOERROR", [f"{FLIP} 9 IN A 10.9.1.1", f"{FLIP} 9 IN A 10.9.1.2"], []),
        (PORT, "SRV"): ("NOERROR", [f"{PORT} 9 IN SRV 0 50 2000 {ep('10.9.4.1')}",
                                    f"{PORT} 9 IN SRV 0 50 2000 {ep('10.9.4.2')}"],
                        [f"{ep('10.9.4.1')} 9 IN A 10.9.4.1", f"{ep('10.9.4.2')} 9 IN A 10.9.4.2"]),
        (ONLY_A, "A"): ("NXDOMAIN", [], []),
        (ONLY_B, "A"): ("NOERROR", [f"{ONLY_B} 5 IN A 10.9.3.2"], []),
    }
    return {k: {"A": a[k], "B": b[k]} for k in a}


def lines(section):
    return sorted(f"{rrset.name.to_text()} {rrset.ttl} IN "
                  f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
                  for rrset in section for rd in rrset)


class Loader(threading.Thread):
    """Sends UDP queries one at a time, each given 1 s for exactly one answer, no retry."""

    MAX = 5000

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_flag = threading.Event()
        self.sent = 0
        self.unanswered = []
        self.bad = []            # (query, what was wrong)
        self.seen = {"A": 0, "B": 0}
        self.serials = []
        self.last_view = None

    def run(self):
        views = expected_views()
        keys = list(views) + [(ZONE, "SOA")]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(("127.0.0.1", self.port))
        try:
            qid = random.randrange(0x10000)
            while self.sent < self.MAX and not (self.stop_flag.is_set() and self.sent >= 2000):
                name, rdtype = keys[self.sent % len(keys)]
                qid = (qid + 1) & 0xFFFF
                wire = make_query(name, rdtype, qid=qid).to_wire()
                sock.send(wire)
                self.sent += 1
                sock.settimeout(1.0)
                try:
                    reply = sock.recv(65535)
                except socket.timeout:
                    self.unanswered.append((name, rdtype))
                    continue
                if struct.unpack("!H", reply[:2])[0] != qid:
                    self.bad.append(((name, rdtype), "reply with a stale or foreign ID"))
                    continue
                r = dns.message.from_wire(reply)
                if rdtype == "SOA":
                    self.serials.append(r.answer[0][0].serial)
                    continue
                got = (dns.rcode.to_text(r.rcode()), lines(r.answer), lines(r.additional))
                for view, want in views[(name, rdtype)].items():
                    if got == (want[0], sorted(want[1]), sorted(want[2])):
                        self.seen[view] += 1
                        self.last_view = view
                        break
                else:
                    self.bad.append(((name, rdtype), got))
        finally:
            sock.close()


def test_reload_under_load(svcmapd):
    s = svcmapd(LOAD_A)
    loader = Loader(s.port)
    loader.start()
    try:
        outcomes = []
        for i in range(50):
            if i == 25:
                text, want = LOAD_BAD, "failed"
            else:
                text, want = (LOAD_B, "ok") if i % 2 == 0 else (LOAD_A, "ok")
            outcome, new = s.reload(text)
            assert outcome == want, f"SIGHUP #{i + 1}: expected reload {want}, got:\n{new}"
            outcomes.append(outcome)
            time.sleep(0.005)
    finally:
        loader.stop_flag.set()
        loader.join(30)
    assert not loader.is_alive()
    assert outcomes.count("ok") == 49 and outcomes.count("failed") == 1
    assert loader.unanswered == [], (
        f"{len(loader.unanswered)} of {loader.sent} queries unanswered within 1 s, "
        f"first: {loader.unanswered[:5]}")
    assert loader.bad == [], (
        f"{len(loader.bad)} of {loader.sent} answers were neither file A nor file B; "
        f"first: {loader.bad[:3]}")
    assert loader.seen["A"] > 0 and loader.seen["B"] > 0, (
        f"the load did not overlap the reloads: {loader.seen}")
    assert all(b >= a for a, b in zip(loader.serials, loader.serials[1:])), (
        "the SOA serial went back during reloads")
    # Last SIGHUP (#50, i=49) loaded file A.
    check_answer(s.ask(FLIP, "A"), [f"{FLIP} 7 IN A 10.9.0.1", f"{FLIP} 7 IN A 10.9.0.2"])
    assert s.proc.poll() is None
