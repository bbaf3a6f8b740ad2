"""test_transfer.py -- SPEC 8: zone transfers out, to a real NSD and a real Knot DNS as
secondaries, NOTIFY, and who gets a transfer.

The secondaries run with the configuration clauses of the README's "Feeding secondaries"
section, read from the README itself (only the addresses become loopback ones), so the
README shows what is tested.  Every process is started on 127.0.0.1 on free ports and
stopped by PID.
"""

import os
import re
import shutil
import socket
import subprocess
import threading
import time

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import (REPO, SLOW, frame, free_port, make_query, rcode_text, rrlines,
                      run_tool, svc, tcp_read_msg, udp_exchange)
from test_ops import scrape

pytestmark = pytest.mark.skipif(not (shutil.which("nsd") or os.path.exists("/usr/sbin/nsd")),
                                reason="NSD is not installed (tests/run installs it)")

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
PRIMARY = "192.0.2.53"  # svcmapd's address in the README's clauses


# --------------------------------------------------------------------------- the README


def readme_block(marker):
    """The fenced block that follows the README line holding `marker`."""
    text = (REPO / "README.md").read_text()
    at = text.index(marker)
    start = text.index("\n", text.index("```", at)) + 1
    return text[start:text.index("```", start)]


def with_loopback(clause, primary_port, transfer_key):
    """The README's clause with svcmapd at 127.0.0.1: the line that names where to
    transfer from (`transfer_key`) gets svcmapd's port, the others the address alone."""
    lines = []
    for line in clause.splitlines():
        if PRIMARY in line:
            addr = f"127.0.0.1@{primary_port}" if transfer_key(line) else "127.0.0.1"
            line = line.replace(PRIMARY, addr)
        lines.append(line)
    return "\n".join(lines) + "\n"


class Secondary:
    """A real NSD or Knot DNS, secondary of the svcmapd on `primary_port`, on its own
    free 127.0.0.1 port, its configuration the README's clause plus what running it in a
    temporary directory needs."""

    def __init__(self, kind, daemons, tmp_path, primary_port, port=None):
        self.kind = kind
        self.port = port or free_port()
        d = tmp_path / kind
        d.mkdir(exist_ok=True)
        conf = d / f"{kind}.conf"
        if kind == "nsd":
            zone = readme_block("<!-- nsd.conf:").replace('"/var/lib/nsd/', f'"{d}/')
            zone = with_loopback(zone, primary_port, lambda l: "request-xfr" in l)
            conf.write_text(f"""# tests/system/test_transfer.py
server:
    ip-address: 127.0.0.1@{self.port}
    port: {self.port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    cookie-secret-file: "{d}/cookiesecrets.txt"
    server-count: 1
    rrl-ratelimit: 0
    verbosity: 2
remote-control:
    control-enable: no

{zone}""")
            argv = [NSD, "-d", "-c", str(conf)]
        else:
            (d / "run").mkdir(exist_ok=True)
            zone = readme_block("<!-- knot.conf:")
            remote = zone.index("remote:")
            zone = (zone[:remote]
                    + with_loopback(zone[remote:zone.index("acl:")], primary_port, lambda l: True)
                    + with_loopback(zone[zone.index("acl:"):], primary_port, lambda l: False))
            conf.write_text(f"""# tests/system/test_transfer.py
server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: stderr
    any: info

database:
    storage: "{d}"

template:
  - id: default
    storage: "{d}"

{zone}""")
            argv = [KNOTD, "-c", str(conf)]
        assert PRIMARY not in conf.read_text()
        self.daemon = daemons(argv, kind)

    def ask(self, name, rdtype="A", tcp=True):
        q = make_query(name, rdtype)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=2 * SLOW)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=2 * SLOW)

    def serial(self):
        """The serial of the zone it serves, or None (not yet, not running)."""
        try:
            r = self.ask("cluster.local.", "SOA", tcp=False)
        except (OSError, dns.exception.DNSException):
            return None
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return None
        return r.answer[0][0].serial

    def wait_serial(self, serial, timeout):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.daemon.proc.poll() is not None:
                pytest.fail(f"{self.kind} exited ({self.daemon.proc.returncode}):\n"
                            f"{self.daemon.log()}")
            if self.serial() == serial:
                return time.monotonic()
            time.sleep(0.05)
        pytest.fail(f"{self.kind} does not serve serial {serial} within {timeout} s (it has "
                    f"{self.serial()}); its log:\n{self.daemon.log()[-3000:]}")


# --------------------------------------------------------------------------- the mapping

# Every shape of answer: hostnames in and out of the zone, chains, an endpoint name as a
# target, one and several addresses, both families, ports with SRV over tcp, udp, sctp,
# ttl=, and a service of 40 targets.
FARM_TARGETS = ([f"10.1.0.{i}:80" for i in range(1, 31)]
                + [f"[2001:db8:1::{i}]:80" for i in range(1, 11)])
FARM = ",\n  ".join(", ".join(FARM_TARGETS[i:i + 6]) for i in range(0, len(FARM_TARGETS), 6))
MAPPING = f"""[server]
zone = cluster.local
listen = 127.0.0.1:@PORT@
ttl = 5
reverse = 192.168.0.0/16

[transfer]
allow = 127.0.0.1
notify = @NOTIFY@

[namespace test-1]
mysql = mysql.test-1.example.com
web = Web.Example.COM. resolve=no

[namespace test-2]
mysql = 192.168.1.10
redis = 192.168.1.20, 192.168.1.21
pg = 192.168.1.30:5433
ldap = 10.0.0.5:389, [2001:db8::5]:389 srv=_ldap._udp ttl=30
v6 = 2001:db8::1
dual = 10.0.0.7 2001:db8::7 ttl=0
sig = 10.0.0.9:5060 srv=_sip._sctp
db = mysql.test-2.svc.cluster.local
chain = db.test-2.svc.cluster.local
ep = 192-168-1-20.redis.test-2.svc.cluster.local
farm = {FARM}
"""

# The static names of MAPPING and the types they answer: (name, types).
NAMES = [
    ("cluster.local.", ["SOA", "NS", "A"]),
    ("ns.dns.cluster.local.", ["A", "AAAA"]),
    ("dns-version.cluster.local.", ["TXT"]),
    (svc("mysql.test-1"), ["CNAME"]),
    (svc("web.test-1"), ["CNAME"]),
    (svc("db.test-2"), ["CNAME"]),
    (svc("chain.test-2"), ["CNAME"]),
    (svc("ep.test-2"), ["CNAME"]),
    (svc("mysql.test-2"), ["A", "AAAA", "SRV"]),
    (svc("redis.test-2"), ["A", "AAAA"]),
    ("192-168-1-20." + svc("redis.test-2"), ["A", "AAAA"]),
    ("192-168-1-21." + svc("redis.test-2"), ["A"]),
    (svc("pg.test-2"), ["A", "SRV"]),
    ("_pg._tcp." + svc("pg.test-2"), ["SRV"]),
    (svc("ldap.test-2"), ["A", "AAAA", "SRV"]),
    ("_ldap._udp." + svc("ldap.test-2"), ["SRV"]),
    ("10-0-0-5." + svc("ldap.test-2"), ["A"]),
    ("2001-db8--5." + svc("ldap.test-2"), ["AAAA"]),
    (svc("v6.test-2"), ["A", "AAAA"]),
    (svc("dual.test-2"), ["A", "AAAA"]),
    ("10-0-0-7." + svc("dual.test-2"), ["A"]),
    ("2001-db8--7." + svc("dual.test-2"), ["AAAA"]),
    (svc("sig.test-2"), ["A", "SRV"]),
    ("_sip._sctp." + svc("sig.test-2"), ["SRV"]),
    (svc("farm.test-2"), ["A", "AAAA", "SRV"]),
    ("_farm._tcp." + svc("farm.test-2"), ["SRV"]),
    ("10-1-0-17." + svc("farm.test-2"), ["A"]),
    ("2001-db8-1--9." + svc("farm.test-2"), ["AAAA"]),
]


def mapping(*targets, change=None):
    """MAPPING with NOTIFY to `targets` (ports on 127.0.0.1; none: no notify line)."""
    text = MAPPING.replace("@NOTIFY@", ", ".join(f"127.0.0.1:{p}" for p in targets))
    if not targets:
        text = text.replace("notify = \n", "")
    if change:
        text = text.replace(*change)
    return text


def answer_lines(r):
    """The answer section as sorted lower-case lines, TTLs included."""
    return sorted(line.lower() for line in rrlines(r.answer))


def static_names(primary):
    """(name, types) to compare: NAMES, and every owner of svcmapd's own transfer with
    the types a name of its kind answers (a CNAME name: the CNAME alone, svcmapd's
    chasing of it being its own; others: their types, and those they lack)."""
    names = dict(NAMES)
    for line in axfr(primary.port):
        owner, _ttl, _class, rdtype, _rdata = line.lower().split(" ", 4)
        if rdtype == "cname":
            names[owner] = ["CNAME"]
        elif owner not in names:
            names[owner] = ["A", "AAAA", "SRV", "TXT", "CNAME"]
    return names.items()


def same_answers(primary, secondary):
    """[(name, type, svcmapd's, the secondary's)] for every static name that differs."""
    differ = []
    for name, types in static_names(primary):
        for rdtype in types:
            a = primary.ask(name, rdtype, tcp=True)
            b = secondary.ask(name, rdtype)
            got = (rcode_text(b), answer_lines(b))
            want = (rcode_text(a), answer_lines(a))
            if got != want:
                differ.append((name, rdtype, want, got))
    return differ


def axfr(port, source="127.0.0.1", rdtype="AXFR", serial=0):
    """The records of a transfer from svcmapd, as dnspython reads its messages (it
    checks the SOA first and last, and the IDs)."""
    records = []
    for m in dns.query.xfr("127.0.0.1", "cluster.local.", rdtype=rdtype, port=port,
                           relativize=False, source=source, serial=serial,
                           lifetime=30 * SLOW):
        records += rrlines(m.answer)
    return records


# --------------------------------------------------------------------------- tests


@pytest.fixture
def secondaries(svcmapd, daemons, tmp_path):
    """svcmapd on MAPPING, with a real NSD and a real Knot DNS as its secondaries, which
    it notifies; both have transferred the zone."""
    nsd_port, knot_port = free_port(), free_port()
    s = svcmapd(mapping(nsd_port, knot_port))
    serial = s.serial()
    nsd = Secondary("nsd", daemons, tmp_path, s.port, nsd_port)
    knot = Secondary("knot", daemons, tmp_path, s.port, knot_port)
    nsd.wait_serial(serial, 15)
    knot.wait_serial(serial, 15)
    return s, nsd, knot


def test_secondaries_transfer_and_answer_alike(secondaries):
    """NSD and Knot DNS transfer the zone from svcmapd, and for every static name and
    type answer what svcmapd answers (CNAME names: the CNAME itself), TTLs included."""
    s, nsd, knot = secondaries
    for sec in (nsd, knot):
        differ = same_answers(s, sec)
        assert not differ, (f"{sec.kind} answers differently from svcmapd:\n"
                            + "\n".join(f"  {n} {t}:\n    svcmapd {w}\n    {sec.kind} {g}"
                                        for n, t, w, g in differ))
    log = s.log()
    assert re.search(r"transfer: (AXFR|IXFR) of cluster.local serial \d+ to 127.0.0.1:\d+: "
                     r"\d+ records in 1 messages", log), log


def test_notify_brings_a_reload_to_both(secondaries):
    """A reload that changes an address: NOTIFY makes NSD and Knot serve the new address
    within seconds, where the SOA refresh (7200 s) would take two hours."""
    s, nsd, knot = secondaries
    before = s.serial()
    t0 = time.monotonic()
    outcome, _ = s.reload(mapping(nsd.port, knot.port,
                                  change=("mysql = 192.168.1.10", "mysql = 192.168.1.99")))
    assert outcome == "ok"
    serial = s.serial()
    assert serial != before
    refresh = s.ask("cluster.local.", "SOA").answer[0][0].refresh
    assert refresh == 7200
    for sec in (nsd, knot):
        took = sec.wait_serial(serial, 5) - t0
        assert took < 5 * SLOW < refresh
        r = sec.ask(svc("mysql.test-2"), "A")
        assert answer_lines(r) == [f"{svc('mysql.test-2')} 5 in a 192.168.1.99"], r.to_text()
        assert not same_answers(s, sec), f"{sec.kind} differs from svcmapd after the reload"
    log = s.wait_log(f"serial {serial} to 127.0.0.1:{knot.port}: answered", 1)
    assert f"notify: cluster.local serial {serial} to 127.0.0.1:{nsd.port}: answered" in log


def test_refused_to_others(svcmapd, tmp_path):
    """dig AXFR from an address not in [transfer] allow gets REFUSED (also IXFR, also
    over UDP); the allowed one gets the zone; refusals are logged and counted."""
    http = free_port()
    s = svcmapd(mapping().replace("[transfer]", f"[http]\nmetrics = 127.0.0.1:{http}\n\n"
                                  "[transfer]"))
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(s.port), "-b", "127.0.0.2",
                        "+comments", "cluster.local", "AXFR"])
    assert "Transfer failed" in out and "status: REFUSED" in out, out
    for rdtype, tcp in (("AXFR", True), ("IXFR", True), ("AXFR", False), ("IXFR", False)):
        q = make_query("cluster.local.", rdtype)
        if rdtype == "IXFR":
            q.authority.append(dns.rrset.from_text("cluster.local.", 0, "IN", "SOA",
                                                   ". . 1 0 0 0 0"))
        send = dns.query.tcp if tcp else dns.query.udp
        r = send(q, "127.0.0.1", port=s.port, source="127.0.0.2", timeout=2 * SLOW)
        assert rcode_text(r) == "REFUSED" and not r.answer, f"{rdtype} tcp={tcp}: {r}"
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(s.port), "-b", "127.0.0.1",
                        "cluster.local", "AXFR"])
    assert rc == 0 and re.search(r"XFR size: \d+ records", out), out
    log = s.wait_log("refused to 127.0.0.2", 1)
    assert re.search(r"\[WARNING\] transfer: AXFR of cluster.local refused to 127.0.0.2:\d+: "
                     r"not in \[transfer\] allow", log), log
    m = scrape(http)
    assert m.get("svcmapd_transfers_total", result="refused") == 5
    assert m.get("svcmapd_transfers_total", result="done") == 1
    # over UDP the allowed client is told to use TCP, as NSD and Knot tell it
    r = dns.query.udp(make_query("cluster.local.", "AXFR"), "127.0.0.1", port=s.port,
                      timeout=2 * SLOW)
    assert rcode_text(r) == "NOTIMP", r


def test_ixfr_is_a_whole_zone(svcmapd):
    """IXFR from an older serial: the zone, AXFR-style (RFC 1995 4); from the current
    one: the SOA alone (up to date)."""
    s = svcmapd(mapping())
    serial = s.serial()
    full = axfr(s.port)
    assert sorted(axfr(s.port, rdtype="IXFR", serial=serial - 1)) == sorted(full)
    r = dns.query.tcp(make_query("cluster.local.", "IXFR"), "127.0.0.1", port=s.port,
                      timeout=2 * SLOW)
    assert rcode_text(r) == "FORMERR", r
    q = make_query("cluster.local.", "IXFR")
    q.authority.append(dns.rrset.from_text("cluster.local.", 0, "IN", "SOA",
                                           f". . {serial} 0 0 0 0"))
    r = dns.query.tcp(q, "127.0.0.1", port=s.port, timeout=2 * SLOW)
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.SOA] and len(r.answer[0]) == 1, r


def big_mapping(n, prefix=10, notify=None):
    """n services of one address each, 1000 per namespace; `prefix` is the first octet."""
    lines = ["[server]", "listen = 127.0.0.1:@PORT@", "[transfer]", "allow = 127.0.0.1"]
    for i in range(n):
        if i % 1000 == 0:
            lines.append(f"[namespace ns-{i // 1000}]")
        lines.append(f"s{i} = {prefix}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    return "\n".join(lines) + "\n"


def test_large_zone_while_answering(svcmapd):
    """100,000 services transfer completely (every record counted, by dig) while UDP
    queries go on being answered, each one, the transfer a turn of the loop at a time."""
    n = 100_000
    s = svcmapd(big_mapping(n))
    stop = threading.Event()
    answered, missed, during = [0], [], [0]
    transferring = threading.Event()

    def query_loop():
        i = 0
        while not stop.is_set():
            k = (i * 7919) % n
            q = make_query(f"s{k}.ns-{k // 1000}.svc.cluster.local.", "A").to_wire()
            w = udp_exchange(q, s.port, timeout=2.0)
            if w is None:
                missed.append(k)
            else:
                addr = dns.message.from_wire(w).answer[0][0].address
                want = f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"
                if addr != want:
                    missed.append((k, addr))
                answered[0] += 1
                during[0] += transferring.is_set()
            i += 1
            time.sleep(0.002)

    t = threading.Thread(target=query_loop, daemon=True)
    t.start()
    time.sleep(0.2)
    transferring.set()
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(s.port), "+noall", "+stats",
                        "cluster.local", "AXFR"], timeout=60 * SLOW)
    transferring.clear()
    time.sleep(0.2)
    stop.set()
    t.join(10)
    m = re.search(r"XFR size: (\d+) records \(messages (\d+), bytes (\d+)\)", out)
    assert rc == 0 and m, out
    # the services' A records, the SOA twice, NS, ns.dns A, dns-version TXT
    assert int(m.group(1)) == n + 5, out
    assert int(m.group(2)) > 100, "a transfer of 100,000 records in many messages"
    assert not missed, f"{len(missed)} queries unanswered or wrong: {missed[:5]}"
    assert answered[0] > 50 and during[0] > 0, (answered[0], during[0])


def test_reload_during_transfer_is_one_version(svcmapd, tmp_path):
    """A reload while a transfer is being sent changes none of it: every record, the
    SOAs included, is the old version; the next transfer is the new one."""
    n = 200_000
    s = svcmapd(big_mapping(n, prefix=10))
    old = s.serial()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow secondary
    sock.settimeout(30 * SLOW)
    sock.connect(("127.0.0.1", s.port))
    try:
        sock.sendall(frame(make_query("cluster.local.", "AXFR", qid=777).to_wire()))
        messages = [dns.message.from_wire(tcp_read_msg(sock), one_rr_per_rrset=True)]
        transfers = s.count("transfer: AXFR")
        outcome, _ = s.reload(big_mapping(n, prefix=11))
        assert outcome == "ok" and s.serial() != old
        # a transfer still under way (more than the kernel's buffers hold was left)
        assert s.count("transfer: AXFR") == transfers, s.log()
        while True:
            m = dns.message.from_wire(tcp_read_msg(sock), one_rr_per_rrset=True)
            messages.append(m)
            if len(messages) > 1 and m.answer and m.answer[-1].rdtype == dns.rdatatype.SOA:
                break
    finally:
        sock.close()
    records = [rr for m in messages for rr in m.answer]
    soas = [rr[0].serial for rr in records if rr.rdtype == dns.rdatatype.SOA]
    addrs = [rr[0].address for rr in records if rr.rdtype == dns.rdatatype.A
             and rr.name.to_text().startswith("s")]
    assert soas == [old, old], soas
    assert len(addrs) == n and all(a.startswith("10.") for a in addrs), (
        f"{len(addrs)} addresses, {sum(not a.startswith('10.') for a in addrs)} of the new "
        "version")
    assert all(m.id == 777 for m in messages)
    s.wait_log(f"transfer: AXFR of cluster.local serial {old} to", 1)
    new = axfr(s.port)
    assert sum(" IN A 11." in line for line in new) == n


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_reader_costs_no_zone_of_memory(svcmapd, monkeypatch):
    """A secondary that asks for the zone and does not read: svcmapd writes what the
    connection takes (the kernel's socket buffers, 4 MiB or so) and keeps no copy of the
    rest (6.5 MB of messages in all here) in its memory: 60 KiB more RSS with the
    transfer written as the client reads, 2.5 MiB when it was written whole at once.
    When the client goes, the transfer is counted as cut off."""
    n = 200_000
    http = free_port()
    # Under AddressSanitizer, memory freed waits in a quarantine instead of
    # being used again: every message written would stay in the RSS.
    monkeypatch.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                       ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0")
    s = svcmapd(big_mapping(n).replace("[transfer]", f"[http]\nmetrics = 127.0.0.1:{http}\n"
                                       "[transfer]"))
    time.sleep(0.3)
    base = rss_kib(s.proc.pid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.port))
    try:
        sock.sendall(frame(make_query("cluster.local.", "AXFR").to_wire()))
        time.sleep(2 * SLOW)
        grown = rss_kib(s.proc.pid) - base
        assert grown < 1024, f"RSS grew by {grown} KiB while a client did not read"
        # the others are answered meanwhile
        r = s.ask("s17.ns-0.svc.cluster.local.", "A")
        assert rcode_text(r) == "NOERROR", r
    finally:
        sock.close()
    deadline = time.monotonic() + 10 * SLOW
    while scrape(http).get("svcmapd_transfers_total", result="aborted") != 1:
        assert time.monotonic() < deadline, "the cut-off transfer is not counted"
        time.sleep(0.05)
    assert re.search(r"transfer: AXFR of cluster.local serial \d+ to 127.0.0.1:\d+ cut off",
                     s.log()), s.log()


# --------------------------------------------------------------------------- NOTIFY


class FakeSecondary:
    """A UDP socket on 127.0.0.1 that receives NOTIFYs and answers as told."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def receive(self, timeout):
        """(time, message, sender) of the next datagram, or None."""
        self.sock.settimeout(timeout * SLOW)
        try:
            data, peer = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        return time.monotonic(), dns.message.from_wire(data), peer

    def answer(self, m, peer, rcode=dns.rcode.NOERROR):
        r = dns.message.make_response(m)
        r.set_rcode(rcode)
        self.sock.sendto(r.to_wire(), peer)

    def close(self):
        self.sock.close()


def check_notify(m, serial):
    """A NOTIFY of RFC 1996 3.7: opcode NOTIFY, AA, the zone's SOA as question and
    answer."""
    assert m.opcode() == dns.opcode.NOTIFY and not (m.flags & dns.flags.QR), m
    assert m.flags & dns.flags.AA, m
    assert len(m.question) == 1 and m.question[0].name.to_text() == "cluster.local."
    assert m.question[0].rdtype == dns.rdatatype.SOA
    assert len(m.answer) == 1 and m.answer[0].rdtype == dns.rdatatype.SOA
    assert m.answer[0][0].serial == serial, m


def test_notify_retried_until_answered(svcmapd):
    """A secondary that answers the third NOTIFY: sent again after 1 then 2 seconds, the
    same ID; one log line when answered, counted; a reload that changes nothing sends
    none, one that changes the serial sends one more."""
    fake = FakeSecondary()
    http = free_port()
    try:
        s = svcmapd(mapping(fake.port).replace("[transfer]", f"[http]\nmetrics = 127.0.0.1:"
                                               f"{http}\n\n[transfer]"))
        serial = s.serial()
        got = [fake.receive(5) for _ in range(3)]
        assert all(got), "three NOTIFYs"
        for t, m, _ in got:
            check_notify(m, serial)
        assert len({m.id for _, m, _ in got}) == 1, "one ID for the tries of one NOTIFY"
        gaps = [got[1][0] - got[0][0], got[2][0] - got[1][0]]
        assert 0.7 < gaps[0] < 1.8 * SLOW and 1.5 < gaps[1] < 3.0 * SLOW, gaps
        fake.answer(got[2][1], got[2][2])
        s.wait_log(f"notify: cluster.local serial {serial} to 127.0.0.1:{fake.port}: answered "
                   "after 3 tries", 1)
        assert fake.receive(2.5) is None, "nothing after the answer"
        m = scrape(http)
        target = f"127.0.0.1:{fake.port}"
        assert m.get("svcmapd_notify_sent_total", target=target) == 3
        assert m.get("svcmapd_notify_acknowledged_total", target=target) == 1
        assert m.get("svcmapd_notify_failures_total", target=target) == 0

        # the same mapping again: the serial stays, nobody is notified
        text = s.config_path.read_text()
        outcome, _ = s.reload(text + "; a comment\n")
        assert outcome == "ok" and s.serial() == serial
        assert fake.receive(1.5) is None, "a NOTIFY for a serial the secondary has"
        # a change: one NOTIFY of the new serial
        outcome, _ = s.reload(text.replace("192.168.1.10", "192.168.1.11"))
        new = s.serial()
        assert outcome == "ok" and new != serial
        t, m, peer = fake.receive(5)
        check_notify(m, new)
        fake.answer(m, peer)
        s.wait_log(f"serial {new} to 127.0.0.1:{fake.port}: answered after 1 try", 1)
    finally:
        fake.close()


def test_notify_answered_with_an_error(svcmapd):
    """A secondary that answers REFUSED (not configured for the zone): one warning, a
    failure counted, and no more tries: it answered."""
    fake = FakeSecondary()
    try:
        s = svcmapd(mapping(fake.port))
        t, m, peer = fake.receive(5)
        fake.answer(m, peer, dns.rcode.REFUSED)
        log = s.wait_log("answered REFUSED", 1)
        assert re.search(r"\[WARNING\] notify: cluster.local serial \d+ to 127.0.0.1:\d+: "
                         r"answered REFUSED", log), log
        assert fake.receive(2.5) is None
    finally:
        fake.close()


def test_notify_given_up(svcmapd):
    """A secondary that never answers: five NOTIFYs, 1, 2, 4 and 8 s apart, then a
    warning 8 s after the last, and nothing more."""
    fake = FakeSecondary()
    try:
        s = svcmapd(mapping(fake.port))
        got = []
        while len(got) < 6:
            r = fake.receive(12)
            if r is None:
                break
            got.append(r)
        assert len(got) == 5, f"{len(got)} NOTIFYs"
        gaps = [round(b[0] - a[0]) for a, b in zip(got, got[1:])]
        assert gaps == [1, 2, 4, 8], gaps
        log = s.wait_log("given up", 1, timeout=2)
        assert re.search(r"\[WARNING\] notify: cluster.local serial \d+ to 127.0.0.1:\d+: no "
                         r"answer to 5 tries in 23 s; given up", log), log
    finally:
        fake.close()


# --------------------------------------------------------------------------- health checks


def svcmapd_knows_health():
    out = subprocess.run([str(REPO / "build" / "svcmapd") if not os.environ.get("SVCMAPD")
                          else os.environ["SVCMAPD"], "--list-options"], capture_output=True,
                         text=True).stdout
    return out.startswith("server") and "\nhealth\t" in out


@pytest.mark.skipif(not svcmapd_knows_health(), reason="this svcmapd has no health checks")
def test_transfer_carries_every_target_whatever_health_says(svcmapd):
    """A service whose second target is down answers its first alone; its transfer
    carries both: the file's view, which a secondary cannot probe (SPEC 8, 6)."""
    up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    up.bind(("127.0.0.3", 0))
    up.listen(16)
    port = up.getsockname()[1]
    try:
        s = svcmapd(f"""[server]
listen = 127.0.0.1:@PORT@
[health]
interval = 1s
timeout = 500ms
fall = 1
rise = 1
[transfer]
allow = 127.0.0.1
[namespace a]
db = 127.0.0.3:{port}, 127.0.0.4:{port} check=tcp
""")
        name = svc("db.a")
        deadline = time.monotonic() + 10 * SLOW
        while answer_lines(s.ask(name, "A")) != [f"{name} 1 in a 127.0.0.3"]:
            assert time.monotonic() < deadline, s.ask(name, "A").to_text()
            time.sleep(0.2)
        records = axfr(s.port)
        assert sum(line.startswith(f"{name} ") and " A 127.0.0." in line
                   for line in records) == 2, records
    finally:
        up.close()
