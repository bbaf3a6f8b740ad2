"""test_upstream.py -- SPEC 2.3 / 2.3.1: hostname targets outside the zone resolved
through the `[upstream]` servers (CoreDNS's ExternalName answer: the CNAME, then the
target's records), cached per worker, prefetched, served stale (RFC 8767).

The upstream is a FakeUpstream (conftest): an authoritative server in a thread on a
free 127.0.0.1 port, whose records and behaviours the tests change while svcmapd runs,
and which logs every query it receives.  dnsmasq and unbound stand in for CoreDNS in
front of svcmapd.  Nothing leaves loopback: svcmapd only knows the fake upstream (or a
dead loopback port), dnsmasq has --no-resolv and no other server, unbound sends from
127.0.0.1 only, to stub zones on 127.0.0.1.

Caches are per worker and SO_REUSEPORT picks the worker by the client's address and
port, so every test that relies on the cache asks through one UdpClient (one socket).

svcmapd's cache clock is CLOCK_MONOTONIC(_COARSE) in whole seconds; test_prefetch
aligns its first query with that clock's seconds (early and late in a second), since
where the second boundary falls decides what a whole-second clock does."""

import os
import re
import socket
import struct
import threading
import time

import dns.message
import dns.rdatatype
import pytest

from conftest import (PortBlocker, ZONE, check_answer, check_header, error_lines, free_port,
                      ipv6_loopback_available, make_query, rrlines, run_cli, run_tool, svc,
                      tcp_connect, tcp_read_msg, udp_collect, udp_send)

MYSQL, WEB, SLOW, CHAIN = svc("mysql.test-1"), svc("web.test-1"), svc("slow.test-1"), svc(
    "chain.test-1")
NORESOLVE, ALIAS, IPSVC = svc("noresolve.test-1"), svc("alias.test-1"), svc("mysql.test-2")
T_MYSQL, T_WEB, T_SLOW, T_CHAIN = ("mysql.test-1.example.com.", "web.example.com.",
                                   "slow.example.com.", "chain.example.com.")
PROBES = [(svc(f"p{i}.test-1"), f"p{i}.example.com.") for i in range(1, 6)]

BASE = """# upstream test mapping
[server]
zone   = cluster.local
listen = 127.0.0.1:@PORT@
ttl    = 5

[upstream]
{upstream}

[namespace test-1]
mysql     = mysql.test-1.example.com
web       = web.example.com
slow      = slow.example.com.
chain     = chain.example.com
noresolve = db.example.com resolve=no
alias     = mysql.test-2.svc.cluster.local
{probes}

[namespace test-2]
mysql = 192.168.1.10
"""

MARGIN = 1.5    # seconds on top of a configured timeout
FAST = 0.5      # "at once", on a noisy 2-core machine


def config(servers, timeout=2, **more):
    lines = [f"servers = {servers}", f"timeout = {timeout}"]
    lines += [f"{k.replace('_', '-')} = {v}" for k, v in more.items()]
    probes = "\n".join(f"p{i} = p{i}.example.com" for i in range(1, 6))
    return BASE.format(upstream="\n".join(lines), probes=probes)


def workers():
    """How many workers the svcmapd of these tests runs (conftest injects
    SVCMAPD_TEST_WORKERS; without it svcmapd runs one per online CPU)."""
    n = os.environ.get("SVCMAPD_TEST_WORKERS")
    return int(n) if n else os.cpu_count()


def answer_lines(r):
    """ANSWER records in order, one per line: 'owner ttl IN type rdata'."""
    return [f"{rr.name.to_text()} {rr.ttl} IN {dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}"
            for rr in r.answer for rd in rr]


def no_ttl(lines):
    return [re.sub(r"^(\S+) \d+ ", r"\1 ", line) for line in lines]


def ttls(r, rdtype):
    return [rr.ttl for rr in r.answer if rr.rdtype == dns.rdatatype.from_text(rdtype)]


def cname(owner, target, ttl=5):
    return f"{owner} {ttl} IN CNAME {target}"


def check_cname_alone(r, owner, target):
    """NOERROR, AA, exactly our CNAME, nothing in AUTHORITY/ADDITIONAL.  Its TTL is the
    zone's for a CNAME query, and 0 for an A or AAAA query that gets no address: such an
    answer says, for the target, "no records" without an SOA, which a cache must not
    keep (RFC 2308 section 5; dnsmasq would, test_cname_alone_poisons_no_cache)."""
    ttl = 5 if r.question[0].rdtype == dns.rdatatype.CNAME else 0
    check_answer(r, [cname(owner, target, ttl)])


def check_external(r, owner, target, records, max_ttl):
    """NOERROR, AA, our CNAME first, then exactly `records` ('owner type rdata', any
    order within an RRset but after the CNAME), each TTL <= max_ttl."""
    check_header(r, "NOERROR")
    got = answer_lines(r)
    assert got and got[0] == cname(owner, target), f"our CNAME must come first: {got}"
    assert sorted(x.replace(" IN ", " ", 1) for x in no_ttl(got[1:])) == sorted(records), (
        f"records after the CNAME:\n  expected {sorted(records)}\n  got      {got[1:]}")
    for rr in r.answer[1:]:
        assert 0 < rr.ttl <= max_ttl, f"TTL {rr.ttl} not in 1..{max_ttl}: {got}"
    assert r.authority == [], f"AUTHORITY should be empty, got {rrlines(r.authority)}"
    assert r.additional == [], f"ADDITIONAL should be empty, got {rrlines(r.additional)}"


def sleep_until(t):
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


def align_to_second(frac_lo, frac_hi):
    """Wait until CLOCK_MONOTONIC's fraction of a second is in [frac_lo, frac_hi):
    svcmapd's cache clock (CLOCK_MONOTONIC_COARSE, whole seconds) ticks with it."""
    while True:
        frac = time.clock_gettime(time.CLOCK_MONOTONIC) % 1.0
        if frac_lo <= frac < frac_hi:
            return
        time.sleep(max(0.001, ((frac_lo - frac) % 1.0) - 0.002))


# --------------------------------------------------------------------------- 1. basics


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("rdtype,rdatas", [
    ("A", ["192.0.2.10", "192.0.2.11"]),
    ("AAAA", ["2001:db8::10"]),
])
def test_cname_then_target_records(svcmapd, upstream, rdtype, rdatas, tcp):
    up = upstream()
    up.add(T_MYSQL, rdtype, *rdatas, ttl=300)
    up.add(T_MYSQL, "A" if rdtype == "AAAA" else "AAAA", "192.0.2.99" if rdtype == "AAAA"
           else "2001:db8::99", ttl=300)
    s = svcmapd(config(up.addr))
    r = s.ask(MYSQL, rdtype, tcp=tcp, one_rr=True, timeout=5, edns=0)
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} {rdtype} {a}" for a in rdatas], 300)
    assert min(ttls(r, rdtype)) >= 298, f"a fresh answer keeps (almost) the upstream TTL: {r}"
    got = up.queries()
    assert [(q.name, q.rdtype) for q in got] == [(T_MYSQL, rdtype)], (
        f"upstream should see one {rdtype} query for the target, saw {got}")
    assert got[0].transport == "udp" and got[0].payload == 1232, (
        f"upstream query should be UDP with EDNS payload 1232: {got[0]}")


def test_mixed_case_target_is_one_cache_entry(svcmapd, upstream, udp_client):
    """A hostname written in capitals keeps them in our CNAME (as written, as CoreDNS's
    ExternalName does), but is looked up and cached in lower case: the same target
    written two ways is one upstream query."""
    up = upstream()
    up.add(T_WEB, "A", "192.0.2.20", ttl=300)
    s = svcmapd(config(up.addr) + "\n[namespace test-3]\nupper = Web.Example.COM\n"
                "lower = web.example.com\n")
    c = udp_client(s.port)
    upper, lower = svc("upper.test-3"), svc("lower.test-3")
    r = c.ask(upper, "A")
    check_header(r, "NOERROR")
    got = answer_lines(r)
    assert got[0] == f"{upper} 5 IN CNAME Web.Example.COM.", got
    assert [x.split()[-1] for x in got[1:]] == ["192.0.2.20"], got
    check_external(c.ask(lower, "A"), lower, T_WEB, [f"{T_WEB} A 192.0.2.20"], 300)
    assert [(q.name.lower(), q.rdtype) for q in up.queries()] == [(T_WEB, "A")], up.queries()


def test_cname_query_never_goes_upstream(svcmapd, upstream):

    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.10")
    s = svcmapd(config(up.addr))
    for tcp in (False, True):
        check_cname_alone(s.ask(MYSQL, "CNAME", tcp=tcp), MYSQL, T_MYSQL)
    # an A query afterwards does reach the upstream: the log above was not empty by
    # accident of a dead upstream
    check_external(s.ask(MYSQL, "A", timeout=5), MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.10"],
                   300)
    assert [q.rdtype for q in up.queries()] == ["A"], up.queries()


def test_upstream_queries_from_fresh_ports(svcmapd, upstream):
    """Each lookup asks over UDP from its own (random) source port, never from the
    port svcmapd listens on, with EDNS 1232."""
    up = upstream()
    for _, target in PROBES:
        up.add(target, "A", "192.0.2.20")
    s = svcmapd(config(up.addr))
    for owner, target in PROBES:
        check_external(s.ask(owner, "A", timeout=5), owner, target, [f"{target} A 192.0.2.20"],
                       300)
    got = up.queries()
    assert sorted(q.name for q in got) == sorted(t for _, t in PROBES), got
    ports = [q.src[1] for q in got]
    assert len(set(ports)) == len(ports), f"source ports reused across lookups: {ports}"
    assert s.port not in ports, f"a lookup was sent from the listening port {s.port}: {ports}"
    assert all(q.src[0] == "127.0.0.1" and q.payload == 1232 for q in got), got


@pytest.mark.skipif(not ipv6_loopback_available(), reason="::1 cannot be bound on this host")
def test_ipv6_upstream(svcmapd, upstream):
    up = upstream("::1")
    up.add(T_MYSQL, "A", "192.0.2.10")
    s = svcmapd(config(up.addr))
    assert up.addr.startswith("[::1]:")
    check_external(s.ask(MYSQL, "A", timeout=5), MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.10"],
                   300)
    assert up.count(T_MYSQL, "A", "udp") == 1, up.queries()


# --------------------------------------------------------------------------- 2. forwarders


def start_dnsmasq(daemons, tmp_path, svcmapd_port, default=None):
    """dnsmasq on a free 127.0.0.1 port, forwarding cluster.local to svcmapd, and
    everything else to 127.0.0.1#`default` if given (else nowhere); it logs queries."""
    port = free_port()
    d = daemons(["/usr/sbin/dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                 f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                 f"--server=/cluster.local/127.0.0.1#{svcmapd_port}"]
                + ([f"--server=127.0.0.1#{default}"] if default else [])
                + [f"--pid-file={tmp_path / 'dnsmasq.pid'}", "--log-facility=-", "--log-queries"],
                "dnsmasq")
    d.port = port
    return d.wait_ready(port, make_query(ZONE, "SOA", rd=True).to_wire())


UNBOUND_CONF = """server:
    interface: 127.0.0.1@{port}
    port: {port}
    # every packet unbound sends leaves from 127.0.0.1, so the kernel cannot route
    # one off loopback; no IPv6 at all
    outgoing-interface: 127.0.0.1
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    domain-insecure: "cluster.local"
    domain-insecure: "example.com"
    username: ""
    chroot: ""
    directory: "{tmp}"
    pidfile: "{tmp}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    module-config: "iterator"
    qname-minimisation: no
    target-fetch-policy: "0 0 0 0 0"
    prefetch: no
    harden-referral-path: no
    # loopback-only root hints, and the root itself is a stub on a dead loopback port
    root-hints: "{tmp}/root.hints"
    # client queries for anything but the two test zones are refused
    local-zone: "." refuse
    local-zone: "cluster.local." transparent
    local-zone: "example.com." transparent

remote-control:
    control-enable: no

stub-zone:
    name: "cluster.local"
    stub-addr: 127.0.0.1@{svcmapd}

stub-zone:
    name: "example.com"
    stub-addr: 127.0.0.1@{upstream}

stub-zone:
    name: "."
    stub-addr: 127.0.0.1@{dead}
"""


def start_unbound(daemons, tmp_path, svcmapd_port, upstream_port):
    port = free_port()
    (tmp_path / "root.hints").write_text(". 3600000 IN NS a.root.invalid.\n"
                                         "a.root.invalid. 3600000 IN A 127.0.0.1\n")
    conf = tmp_path / "unbound.conf"
    conf.write_text(UNBOUND_CONF.format(port=port, tmp=tmp_path, svcmapd=svcmapd_port,
                                        upstream=upstream_port, dead=free_port()))
    rc, out = run_tool(["/usr/sbin/unbound-checkconf", str(conf)])
    assert rc == 0, f"unbound-checkconf:\n{out}"
    d = daemons(["/usr/sbin/unbound", "-d", "-c", str(conf)], "unbound")
    d.port = port
    return d.wait_ready(port, make_query(ZONE, "SOA", rd=True).to_wire())


@pytest.mark.parametrize("forwarder", ["dnsmasq", "unbound"])
def test_through_forwarder(svcmapd, upstream, daemons, tmp_path, forwarder):
    """A stub resolver behind CoreDNS-like forwarding gets the CNAME and the address in
    one answer (the reason for resolving at all: glibc/musl do not chase CNAMEs)."""
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.10", ttl=300)
    s = svcmapd(config(up.addr))
    if forwarder == "dnsmasq":
        fw = start_dnsmasq(daemons, tmp_path, s.port)
    else:
        fw = start_unbound(daemons, tmp_path, s.port, up.port)
    w = None
    for _ in range(3):
        w = udp_collect(udp_send(fw.port, MYSQL, "A", rd=True, edns=0), 5.0)
        if w is not None:
            break
    assert w is not None, f"no answer from {forwarder}; log:\n{fw.log()}"
    assert w.rcode() == 0, f"{forwarder}: rcode {w.rcode()}:\n{w}"
    assert no_ttl(answer_lines(w)) == [f"{MYSQL} IN CNAME {T_MYSQL}",
                                       f"{T_MYSQL} IN A 192.0.2.10"], (
        f"{forwarder} answer:\n{w}")
    assert all(0 < rr.ttl <= 300 for rr in w.answer), w
    assert up.count(T_MYSQL, "A") >= 1, up.queries()
    # nothing else was asked of the upstream but the target (unbound may ask its own
    # questions about example.com, all of them to our loopback upstream)
    assert all(q.name.endswith("example.com.") for q in up.queries()), up.queries()


def test_dig_through_dnsmasq(svcmapd, upstream, daemons, tmp_path):
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.10", ttl=300)
    s = svcmapd(config(up.addr))
    fw = start_dnsmasq(daemons, tmp_path, s.port)
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(fw.port), "+time=5", "+tries=1",
                        "+nosearch", MYSQL, "A"])
    assert rc == 0, f"dig exited {rc}:\n{out}"
    assert re.search(r"status: NOERROR", out), out
    assert re.search(r";; flags: [a-z ]*; QUERY: 1, ANSWER: 2,", out), out
    answer = out.split(";; ANSWER SECTION:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    got = [line.split() for line in answer]
    assert [(g[0], g[2], g[3], g[4]) for g in got] == [
        (MYSQL, "IN", "CNAME", T_MYSQL), (T_MYSQL, "IN", "A", "192.0.2.10")], out
    assert all(0 < int(g[1]) <= 300 for g in got), out


# --------------------------------------------------------------------------- 3, 4. failures


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_upstream_down(svcmapd, udp_client, kind):
    """refused: nobody listens (ICMP port unreachable) -> failed at once.
    silent: the port is bound but never answers -> the CNAME alone after `timeout`.
    Either way IP-mapped names are answered normally and at once meanwhile, by the
    worker whose lookups are failing (one client socket) and by any other."""
    if kind == "refused":
        port, timeout, blocker = free_port(), 5, None
    else:
        blocker = PortBlocker()
        port, timeout = blocker.port, 2
    try:
        s = svcmapd(config(f"127.0.0.1:{port}", timeout=timeout, negative_ttl=0))
        c = udp_client(s.port)
        targets = [(MYSQL, T_MYSQL), (WEB, T_WEB), (CHAIN, T_CHAIN)]
        pending = [(o, t, c.send(o, "A")) for o, t in targets]
        worst = 0.0
        for i in range(200):
            if kind == "refused" and i % 20 == 10:   # keep lookups failing meanwhile
                pending += [(o, t, c.send(o, "A")) for o, t in targets]
            if i % 2:
                t0 = time.monotonic()
                r = s.ask(IPSVC, "A", timeout=2)      # a fresh socket: any worker
                elapsed = time.monotonic() - t0
            else:
                r = c.ask(IPSVC, "A", timeout=2)      # the worker with the lookups
                elapsed = r.elapsed
            worst = max(worst, elapsed)
            check_answer(r, [f"{IPSVC} 5 IN A 192.168.1.10"])
        assert worst < FAST, f"an IP-mapped query took {worst:.3f}s while lookups failed"
        for owner, target, qid in pending:
            r = c.receive(qid, timeout + MARGIN)
            check_cname_alone(r, owner, target)
            if kind == "refused":
                assert r.elapsed < FAST * 3, (
                    f"refused upstream: the CNAME alone should come at once, took "
                    f"{r.elapsed:.2f}s (timeout {timeout}s)")
    finally:
        if blocker:
            blocker.close()


def test_slow_upstream_blocks_nothing_else(svcmapd, upstream, udp_client):
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.add(T_WEB, "A", "192.0.2.31", ttl=300)
    up.rule(T_SLOW, delay=3.0)
    s = svcmapd(config(up.addr, timeout=5))
    c = udp_client(s.port)      # one socket: the same worker as the slow query
    slow = c.send(SLOW, "A")
    assert len(up.wait_count(1, T_SLOW, timeout=2)) == 1, "svcmapd did not ask the upstream"
    r = c.ask(IPSVC, "A", timeout=2)
    check_answer(r, [f"{IPSVC} 5 IN A 192.168.1.10"])
    assert r.elapsed < FAST, f"IP-mapped answer took {r.elapsed:.2f}s during a slow lookup"
    r = c.ask(WEB, "A", timeout=2)
    check_external(r, WEB, T_WEB, [f"{T_WEB} A 192.0.2.31"], 300)
    assert r.elapsed < FAST, f"CNAME+A with a fast upstream took {r.elapsed:.2f}s"
    for _ in range(20):     # many queries from many sockets, i.e. every worker
        check_answer(s.ask(IPSVC, "A", timeout=FAST), [f"{IPSVC} 5 IN A 192.168.1.10"])
    r = c.receive(slow, 5 + MARGIN)
    check_external(r, SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.30"], 300)
    assert r.elapsed > 2.5, f"answered after {r.elapsed:.2f}s: before the upstream replied?"


@pytest.mark.parametrize("together", [True, False], ids=["one-write", "after-a-pause"])
def test_slow_lookup_does_not_hold_up_tcp_pipeline(svcmapd, upstream, together):
    """SPEC 3 / RFC 7766 6.2.1.1: pipelined answers may come in any order, so a query
    waiting for the upstream does not hold up the next one on its connection."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=2.0)
    s = svcmapd(config(up.addr, timeout=5))
    q1, q2 = make_query(SLOW, "A", qid=1001), make_query(IPSVC, "A", qid=1002)
    frames = [struct.pack("!H", len(w)) + w for w in (q1.to_wire(), q2.to_wire())]
    with tcp_connect(s.port, timeout=5 + MARGIN) as sock:
        t0 = time.monotonic()
        if together:
            sock.sendall(b"".join(frames))
        else:
            sock.sendall(frames[0])
            assert len(up.wait_count(1, T_SLOW, timeout=2)) == 1, "no lookup started"
            sock.sendall(frames[1])
        t1 = time.monotonic()
        first = tcp_read_msg(sock)
        t_first = time.monotonic() - t1
        second = tcp_read_msg(sock)
        t_second = time.monotonic() - t0
    ids = [struct.unpack("!H", w[:2])[0] for w in (first, second)]
    assert sorted(ids) == [1001, 1002], ids
    assert ids[0] == 1002 and t_first < FAST, (
        f"the IP-mapped answer (id 1002) should come first and at once; got id {ids[0]} "
        f"after {t_first:.2f}s")
    assert t_second > 1.5, f"slow answer after {t_second:.2f}s"
    r = parse_reply(second, q1)
    check_external(r, SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.30"], 300)


def parse_reply(wire, q):
    r = dns.message.from_wire(wire, one_rr_per_rrset=True)
    r.query, r.query_wire, r.wire = q, q.to_wire(), wire
    return r


def test_tcp_half_close_while_waiting(svcmapd, upstream):
    """Like test_tcp.test_client_half_close: a client that shuts down its sending side
    after its query still gets the answer, also when the answer waits for a lookup."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=1.0)
    s = svcmapd(config(up.addr, timeout=3))
    q = make_query(SLOW, "A")
    with tcp_connect(s.port, timeout=3 + MARGIN) as sock:
        sock.sendall(struct.pack("!H", len(q.to_wire())) + q.to_wire())
        sock.shutdown(socket.SHUT_WR)
        try:
            wire = tcp_read_msg(sock)
        except (EOFError, OSError) as e:
            pytest.fail(f"no answer after half-close while the lookup ran: {e!r}")
    check_external(parse_reply(wire, q), SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.30"], 300)


def test_tcp_connection_waiting_for_lookup_is_not_idle(svcmapd, upstream):
    """A connection whose query waits for the upstream is not idle: tcp-idle-timeout
    (1 s here) does not cut it while the lookup (2 s) runs."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=2.0)
    s = svcmapd(config(up.addr, timeout=5).replace("ttl    = 5", "ttl    = 5\n"
                                                      "tcp-idle-timeout = 1"))
    q = make_query(SLOW, "A")
    with tcp_connect(s.port, timeout=5 + MARGIN) as sock:
        sock.sendall(struct.pack("!H", len(q.to_wire())) + q.to_wire())
        try:
            wire = tcp_read_msg(sock)
        except (EOFError, OSError) as e:
            pytest.fail(f"connection closed while its query waited for the upstream: {e!r}")
    check_external(parse_reply(wire, q), SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.30"], 300)


def test_client_gone_while_waiting(svcmapd, upstream, udp_client):
    """TCP clients that close before their lookup ends: nothing to answer to, nothing
    breaks; the lookup still fills the cache."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=1.0)
    s = svcmapd(config(up.addr, timeout=3))
    q = make_query(SLOW, "A")
    for _ in range(5):
        with tcp_connect(s.port) as sock:
            sock.sendall(struct.pack("!H", len(q.to_wire())) + q.to_wire())
    assert up.wait_count(1, T_SLOW, timeout=2), "no lookup started"
    time.sleep(1.5)
    c = udp_client(s.port)
    r = c.ask(SLOW, "A", timeout=3 + MARGIN)
    check_external(r, SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.30"], 300)
    assert s.proc.poll() is None, f"svcmapd died:\n{s.log()}"


def test_reload_while_lookup_in_flight(svcmapd, upstream):
    """The waiting query is answered after a reload replaced the zone under it."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=1.5)
    text = config(up.addr, timeout=4)
    s = svcmapd(text)
    pending = udp_send(s.port, SLOW, "A")
    assert up.wait_count(1, T_SLOW, timeout=2), "no lookup started"
    outcome, log = s.reload(text.replace("mysql = 192.168.1.10", "mysql = 192.168.1.11"))
    assert outcome == "ok", log
    r = udp_collect(pending, 4 + MARGIN)
    assert r is not None, f"the waiting query was never answered; log:\n{s.log()}"
    check_header(r, "NOERROR")
    assert no_ttl(answer_lines(r))[0] == f"{SLOW} IN CNAME {T_SLOW}", answer_lines(r)
    check_answer(s.ask(IPSVC, "A"), [f"{IPSVC} 5 IN A 192.168.1.11"])


def test_stop_while_lookup_in_flight(svcmapd, upstream):
    """SPEC 5: SIGTERM stops cleanly; a query waiting for the upstream still gets an
    answer (our CNAME first) and the exit status is 0, without waiting for the lookup."""
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.30", ttl=300)
    up.rule(T_SLOW, delay=3.0)
    s = svcmapd(config(up.addr, timeout=5))
    pending = udp_send(s.port, SLOW, "A")
    assert up.wait_count(1, T_SLOW, timeout=2), "no lookup started"
    result = {}

    def stop():
        t = time.monotonic()
        result["rc"] = s.stop()
        result["took"] = time.monotonic() - t

    stopper = threading.Thread(target=stop)
    t0 = time.monotonic()
    stopper.start()
    r = udp_collect(pending, (t0 - pending[2]) + 5 + MARGIN)
    stopper.join(10)
    rc, took = result.get("rc"), result.get("took")
    assert rc == 0, f"exit status {rc}; stderr:\n{s.log()}"
    assert r is not None, "the waiting query got no answer at shutdown"
    check_header(r, "NOERROR")
    assert no_ttl(answer_lines(r))[0] == f"{SLOW} IN CNAME {T_SLOW}", answer_lines(r)
    at = r.elapsed - (t0 - pending[2])
    assert at < 1.0, f"the waiting query was answered {at:.2f}s after SIGTERM"
    assert took < 2.0, (
        f"stopping took {took:.2f}s: it waited for the lookup (the upstream answers after "
        f"3 s) although its only waiter was answered {at:.2f}s after SIGTERM")


# --------------------------------------------------------------------------- 5. stale


@pytest.mark.parametrize("failure,max_stale", [("drop", 3600), ("servfail", 2)])
def test_stale_answer_when_refresh_fails(svcmapd, upstream, udp_client, failure, max_stale):
    """TTL 2, then the upstream fails (drop: never answers; servfail).  After expiry
    the refresh is tried (the query waits at most `timeout`), the old record is served
    with TTL min(2, 30), and right after that stale answers come at once.  With
    max-stale 2, once that is over too: the CNAME alone."""
    timeout = 2
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.50", ttl=2)
    s = svcmapd(config(up.addr, timeout=timeout, max_stale=max_stale, negative_ttl=0))
    c = udp_client(s.port)
    r = c.ask(MYSQL, "A")
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.50"], 2)
    t_cached = time.monotonic()
    up.rule(T_MYSQL, mode=failure)
    up.replace(T_MYSQL, "A", "192.0.2.51", ttl=2)   # never seen: the upstream fails
    sleep_until(t_cached + 2.3)                       # past expiry
    n = up.count(T_MYSQL)

    r = c.ask(MYSQL, "A", timeout=timeout + MARGIN)
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.50"], 30)
    assert ttls(r, "A") == [min(2, 30)], (
        f"stale records carry TTL min(original, 30) = 2: {answer_lines(r)}")
    assert up.count(T_MYSQL) > n, "the expired entry was served without a refresh attempt"

    r = c.ask(MYSQL, "A", timeout=timeout + MARGIN)
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.50"], 30)
    assert r.elapsed < FAST, (
        f"right after a failed refresh the stale answer should come at once, took "
        f"{r.elapsed:.2f}s")

    if max_stale < 3600:
        # expiry (<= 2 s after arrival) + max-stale + 1 s for the whole-second clock
        sleep_until(t_cached + 2 + max_stale + 1.3)
        check_cname_alone(c.ask(MYSQL, "A", timeout=timeout + MARGIN), MYSQL, T_MYSQL)


# --------------------------------------------------------------------------- 6. TTLs


def test_ttl_counts_down(svcmapd, upstream, udp_client):
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.60", ttl=100)
    s = svcmapd(config(up.addr))
    c = udp_client(s.port)
    r1 = c.ask(MYSQL, "A")
    check_external(r1, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.60"], 100)
    time.sleep(2.1)
    r2 = c.ask(MYSQL, "A")
    check_external(r2, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.60"], 100)
    (t1,), (t2,) = ttls(r1, "A"), ttls(r2, "A")
    assert t2 <= t1 - 1, f"TTL should count down: {t1} then {t2} 2.1s later"
    assert t2 >= t1 - 4, f"TTL dropped too far: {t1} then {t2} 2.1s later"
    assert r2.answer[0].ttl == 5, "our CNAME keeps the zone TTL"
    assert up.count(T_MYSQL) == 1, f"the second answer should come from the cache: {up.queries()}"


# --------------------------------------------------------------------------- 7. negative


def test_negative_upstream_answers(svcmapd, upstream, udp_client):
    """NXDOMAIN (mysql's target) and NODATA (web's target) upstream: the CNAME alone,
    NOERROR; repeats within negative-ttl (2 s) do not ask the upstream again, a query
    after it does."""
    up = upstream()
    up.add(T_MYSQL, "AAAA", "2001:db8::1")
    up.rule(T_MYSQL, mode="nxdomain")
    up.add(T_WEB, "AAAA", "2001:db8::2")            # the name exists, no A: NODATA
    s = svcmapd(config(up.addr, negative_ttl=2))
    c = udp_client(s.port)
    cases = [(MYSQL, T_MYSQL), (WEB, T_WEB)]
    for owner, target in cases:
        check_cname_alone(c.ask(owner, "A"), owner, target)
        assert up.count(target, "A") == 1, up.queries()
    for _ in range(3):
        for owner, target in cases:
            check_cname_alone(c.ask(owner, "A"), owner, target)
    for owner, target in cases:
        assert up.count(target, "A") == 1, (
            f"repeats within negative-ttl must not ask the upstream again: {up.queries()}")
    time.sleep(3.1)
    for owner, target in cases:
        check_cname_alone(c.ask(owner, "A"), owner, target)
        assert up.count(target, "A") == 2, (
            f"after negative-ttl (2 s) the upstream should be asked again: {up.queries()}")


# --------------------------------------------------------------------------- 8. chains


def test_upstream_chain_and_unrelated_records(svcmapd, upstream):
    up = upstream()
    up.add(T_CHAIN, "CNAME", "other.example.com.", ttl=200)
    up.add("other.example.com.", "A", "192.0.2.7", ttl=100)
    up.rule(T_CHAIN, extra=["evil.example.net. 300 IN A 203.0.113.66",
                            f"{MYSQL} 300 IN A 203.0.113.67",
                            f"{T_WEB} 300 IN A 203.0.113.68"])
    s = svcmapd(config(up.addr))
    for tcp in (False, True):
        r = s.ask(CHAIN, "A", tcp=tcp, one_rr=True, timeout=5)
        check_header(r, "NOERROR")
        got = answer_lines(r)
        assert no_ttl(got) == [f"{CHAIN} IN CNAME {T_CHAIN}",
                               f"{T_CHAIN} IN CNAME other.example.com.",
                               "other.example.com. IN A 192.0.2.7"], (
            f"expected our CNAME, their CNAME, their A, in that order; got {got}")
        assert r.answer[0].ttl == 5 and r.answer[1].ttl <= 200 and r.answer[2].ttl <= 100, got
        assert r.authority == [] and r.additional == [], r
    # UDP and TCP clients may reach different workers, each with its own cache
    assert 1 <= up.count(T_CHAIN) <= min(2, workers()), up.queries()


def test_unrelated_records_alone_are_no_answer(svcmapd, upstream):
    """An upstream answer with only records for other names holds nothing for the
    target: the CNAME alone."""
    up = upstream()
    up.add(T_MYSQL, "AAAA", "2001:db8::1")
    up.rule(T_MYSQL, extra=["evil.example.net. 300 IN A 203.0.113.66"])
    s = svcmapd(config(up.addr))
    check_cname_alone(s.ask(MYSQL, "A", timeout=5), MYSQL, T_MYSQL)
    assert up.count(T_MYSQL, "A") == 1, up.queries()


# --------------------------------------------------------------------------- 9. concurrency


def test_concurrent_queries_share_one_lookup(svcmapd, upstream):
    up = upstream()
    up.add(T_SLOW, "A", "192.0.2.90", ttl=300)
    up.rule(T_SLOW, delay=0.5)
    s = svcmapd(config(up.addr, timeout=3))
    pending = [udp_send(s.port, SLOW, "A", qid=1000 + i) for i in range(20)]
    for i, p in enumerate(pending):
        r = udp_collect(p, 3 + MARGIN)
        assert r is not None, f"query {i} got no answer within {3 + MARGIN}s"
        check_external(r, SLOW, T_SLOW, [f"{T_SLOW} A 192.0.2.90"], 300)
    got = up.queries(T_SLOW)
    assert 1 <= len(got) <= workers(), (
        f"{len(got)} upstream queries for 20 concurrent client queries; at most one per "
        f"worker ({workers()}): {got}")


def test_concurrent_queries_one_worker_one_lookup(svcmapd, upstream, udp_client):
    """20 queries from one socket (so one worker), UDP and TCP: one upstream query."""
    owner, target = PROBES[0]
    up = upstream()
    up.add(target, "A", "192.0.2.91", ttl=300)
    up.rule(target, delay=0.5)
    s = svcmapd(config(up.addr, timeout=3))
    c = udp_client(s.port)
    ids = [c.send(owner, "A") for _ in range(20)]
    for qid in ids:
        check_external(c.receive(qid, 3 + MARGIN), owner, target, [f"{target} A 192.0.2.91"],
                       300)
    assert up.count(target) == 1, f"one worker, one lookup: {up.queries()}"


# --------------------------------------------------------------------------- 10. prefetch


@pytest.mark.parametrize("phase", [0.1, 0.75], ids=["early-in-second", "late-in-second"])
def test_prefetch(svcmapd, upstream, udp_client, phase):
    """TTL 4. At t=3.3 s (the last second) the answer comes from the cache at once and
    a refresh goes upstream; at t=4.5 s the refreshed entry answers at once.  The
    refresh is slowed (0.8 s) so that waiting for it would show.  `phase`: where in
    the second of svcmapd's whole-second clock the first answer arrives."""
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.41", ttl=4)
    s = svcmapd(config(up.addr, timeout=3))
    c = udp_client(s.port)
    align_to_second(phase, phase + 0.1)
    t0 = time.monotonic()
    r = c.ask(MYSQL, "A")
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.41"], 4)
    up.replace(T_MYSQL, "A", "192.0.2.42", ttl=4)
    up.rule(T_MYSQL, delay=0.8)

    sleep_until(t0 + 3.3)
    r = c.ask(MYSQL, "A")
    assert r.elapsed < FAST, (
        f"t=3.3s (TTL 4, first answer received {phase:.2f}-{phase + 0.1:.2f}s into a second "
        f"of CLOCK_MONOTONIC): expected an answer from the cache at once, took "
        f"{r.elapsed:.2f}s, answer {answer_lines(r)} (the entry had expired, the query "
        f"waited for a new lookup)")
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.41"], 1)
    got = up.wait_count(2, T_MYSQL, timeout=1.0)
    assert len(got) == 2 and got[1].t < t0 + 4.5, (
        f"expected a refresh query before t=4.5s, got {[(q.t - t0, q) for q in got]}")
    deadline = time.monotonic() + 2
    while got[1].answered is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got[1].answered is not None, "the upstream did not answer the refresh"
    sleep_until(max(t0 + 4.5, got[1].answered + 0.1))
    r = c.ask(MYSQL, "A")
    assert r.elapsed < FAST, f"t=4.5s: expected the refreshed entry at once, took {r.elapsed:.2f}s"
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.42"], 4)
    assert up.count(T_MYSQL) == 2, f"no lookup beyond the refresh: {up.queries()}"


# --------------------------------------------------------------------------- 11. TC


def test_truncated_upstream_answer_retried_over_tcp(svcmapd, upstream):
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.70", "192.0.2.71", ttl=300)
    up.rule(T_MYSQL, mode="tc")
    s = svcmapd(config(up.addr))
    r = s.ask(MYSQL, "A", timeout=5)
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.70", f"{T_MYSQL} A 192.0.2.71"],
                   300)
    got = up.queries(T_MYSQL)
    assert [q.transport for q in got] == ["udp", "tcp"], (
        f"expected one UDP query (TC=1) then one TCP query: {got}")


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
def test_tc_retry_goes_to_the_same_server(svcmapd, upstream, rdtype):
    """Two servers, both truncate over UDP: whichever got the UDP query gets the TCP
    retry; the other one is never asked."""
    up1, up2 = upstream(), upstream()
    for up, a in ((up1, "1"), (up2, "2")):
        up.add(T_MYSQL, "A", f"192.0.2.7{a}")
        up.add(T_MYSQL, "AAAA", f"2001:db8::7{a}")
        up.rule(T_MYSQL, mode="tc")
    s = svcmapd(config(f"{up1.addr}, {up2.addr}"))
    r = s.ask(MYSQL, rdtype, timeout=5)
    asked = [u for u in (up1, up2) if u.queries()]
    assert len(asked) == 1, f"both servers asked: {up1.queries()} {up2.queries()}"
    u = asked[0]
    assert [q.transport for q in u.queries()] == ["udp", "tcp"], u.queries()
    want = "192.0.2.7" if rdtype == "A" else "2001:db8::7"
    check_external(r, MYSQL, T_MYSQL, [f"{T_MYSQL} {rdtype} {want}{1 if u is up1 else 2}"], 300)


def failing_server(upstream, kind):
    """A server for `[upstream] servers` that fails: "unreachable" (nobody listens: ICMP
    port unreachable), "silent" (a bound port that never answers), or else a FakeUpstream
    for the caller to give rule(name, mode=kind).  Returns (address, the PortBlocker to
    close or None, the FakeUpstream or None)."""
    if kind == "unreachable":
        return f"127.0.0.1:{free_port()}", None, None
    if kind == "silent":
        blocker = PortBlocker()
        return f"127.0.0.1:{blocker.port}", blocker, None
    fake = upstream()
    return fake.addr, None, fake


@pytest.mark.parametrize("kind", ["unreachable", "silent", "servfail", "tsig", "tsig-hidden"])
def test_failover_to_another_server(svcmapd, upstream, udp_client, kind):
    """Two servers, one of them broken: every lookup still gets the records, within
    `timeout` (which covers all servers together). tsig: the broken one answers with
    wrong addresses and two TSIG records, a reply to a query nobody signed; it must
    not be used (wire.h says why such replies never reach libldns). tsig-hidden: the
    two TSIGs sit inside a CNAME's rdata, where only libldns's own reading finds them."""
    good = upstream()
    bad, blocker, broken = failing_server(upstream, kind)
    try:
        for owner, target in PROBES:
            good.add(target, "A", "192.0.2.95")
            if kind in ("servfail", "tsig", "tsig-hidden"):
                broken.add(target, "A", "203.0.113.95")
                broken.rule(target, mode=kind)
        timeout = 2
        s = svcmapd(config(f"{bad}, {good.addr}", timeout=timeout))
        c = udp_client(s.port)
        ids = [(o, t, c.send(o, "A")) for o, t in PROBES]
        for owner, target, qid in ids:
            r = c.receive(qid, timeout + MARGIN)
            check_external(r, owner, target, [f"{target} A 192.0.2.95"], 300)
        assert sorted(q.name for q in good.queries()) == sorted(t for _, t in PROBES), (
            good.queries())
    finally:
        if blocker:
            blocker.close()


def test_cached_for_the_smallest_ttl(svcmapd, upstream, udp_client):
    """A chain CNAME (TTL 2) -> A (TTL 300): the entry lives 2 s, then the upstream is
    asked again and a changed chain shows."""
    up = upstream()
    up.add(T_CHAIN, "CNAME", "one.example.com.", ttl=2)
    up.add("one.example.com.", "A", "192.0.2.1", ttl=300)
    up.add("two.example.com.", "A", "192.0.2.2", ttl=300)
    s = svcmapd(config(up.addr))
    c = udp_client(s.port)
    r = c.ask(CHAIN, "A")
    assert no_ttl(answer_lines(r)) == [f"{CHAIN} IN CNAME {T_CHAIN}",
                                       f"{T_CHAIN} IN CNAME one.example.com.",
                                       "one.example.com. IN A 192.0.2.1"], answer_lines(r)
    t_cached = time.monotonic()
    up.replace(T_CHAIN, "CNAME", "two.example.com.", ttl=2)
    r = c.ask(CHAIN, "A")
    assert "one.example.com. IN A 192.0.2.1" in no_ttl(answer_lines(r)), answer_lines(r)
    assert r.answer[1].ttl <= 2 and r.answer[2].ttl <= 300, answer_lines(r)
    sleep_until(t_cached + 2.3)
    r = c.ask(CHAIN, "A")
    assert no_ttl(answer_lines(r)) == [f"{CHAIN} IN CNAME {T_CHAIN}",
                                       f"{T_CHAIN} IN CNAME two.example.com.",
                                       "two.example.com. IN A 192.0.2.2"], answer_lines(r)
    assert up.count(T_CHAIN) == 2, up.queries()


# --------------------------------------------------------------------------- 12. no upstream


def test_resolve_no(svcmapd, upstream):
    up = upstream()
    up.add("db.example.com.", "A", "192.0.2.80")
    up.add("db.example.com.", "AAAA", "2001:db8::80")
    up.add(T_MYSQL, "A", "192.0.2.10")
    s = svcmapd(config(up.addr))
    for rdtype in ("A", "AAAA", "CNAME"):
        for tcp in (False, True):
            check_cname_alone(s.ask(NORESOLVE, rdtype, tcp=tcp), NORESOLVE, "db.example.com.")
    assert up.queries() == [], f"resolve=no must never query the upstream: {up.queries()}"
    # the same server does resolve other services through that upstream
    check_external(s.ask(MYSQL, "A", timeout=5), MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.10"],
                   300)


def test_servers_none(svcmapd, upstream):
    up = upstream()
    up.add(T_MYSQL, "A", "192.0.2.10")
    s = svcmapd(config("none"))
    for rdtype in ("A", "AAAA"):
        for tcp in (False, True):
            r = s.ask(MYSQL, rdtype, tcp=tcp)
            check_cname_alone(r, MYSQL, T_MYSQL)
    assert up.queries() == [], up.queries()


def test_in_zone_target_never_goes_upstream(svcmapd, upstream):
    up = upstream()
    up.add("mysql.test-2.svc.cluster.local.", "A", "203.0.113.1")
    s = svcmapd(config(up.addr))
    for tcp in (False, True):
        r = s.ask(ALIAS, "A", tcp=tcp, one_rr=True)
        check_answer(r, [cname(ALIAS, IPSVC), f"{IPSVC} 5 IN A 192.168.1.10"])
        assert r.answer[0].rdtype == dns.rdatatype.CNAME, "CNAME first"
    assert up.queries() == [], up.queries()


# --------------------------------------------------------------------------- 13. reload


def test_reload_switches_upstream(svcmapd, upstream, udp_client):
    up1, up2 = upstream(), upstream()
    up1.add(T_MYSQL, "A", "192.0.2.1", ttl=2)
    up1.add(T_WEB, "A", "192.0.2.11", ttl=300)
    up2.add(T_MYSQL, "A", "192.0.2.2", ttl=2)
    up2.add(T_WEB, "A", "192.0.2.12", ttl=300)
    s = svcmapd(config(up1.addr))
    c = udp_client(s.port)
    check_external(c.ask(MYSQL, "A"), MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.1"], 2)
    t_cached = time.monotonic()
    outcome, log = s.reload(config(up2.addr))
    assert outcome == "ok", log
    check_external(c.ask(WEB, "A"), WEB, T_WEB, [f"{T_WEB} A 192.0.2.12"], 300)
    assert up1.count(T_WEB) == 0 and up2.count(T_WEB) == 1, (up1.queries(), up2.queries())
    sleep_until(t_cached + 2.3)    # the old upstream's answer has expired
    check_external(c.ask(MYSQL, "A"), MYSQL, T_MYSQL, [f"{T_MYSQL} A 192.0.2.2"], 2)
    assert up1.count(T_MYSQL) == 1 and up2.count(T_MYSQL) == 1, (up1.queries(), up2.queries())


# --------------------------------------------------------------------------- 14. -t


GOOD_UPSTREAM = """servers = 127.0.0.1:5300, [::1]:5300
timeout = 1
cache-size = 10000
max-stale = 3600
negative-ttl = 5"""


@pytest.mark.parametrize("bad", [
    "frobnicate = 1",
    "servers = nonsense",
    "servers = none, 127.0.0.1:53",
    "servers = 127.0.0.1:99999",
    pytest.param("servers = " + ", ".join(f"127.0.0.1:{5300 + i}" for i in range(9)),
                 id="servers = nine of them"),
    "timeout = 0",
    "timeout = 31",
    "negative-ttl = 301",
    "cache-size = many",
])
def test_check_rejects_bad_upstream(tmp_path, bad):
    path = tmp_path / "bad.ini"
    text = ("[server]\nzone = cluster.local\nlisten = 127.0.0.1:5353\n\n[upstream]\n"
            f"timeout = 2\n{bad}\n\n[namespace a]\nb = x.example.com\n")
    path.write_text(text)
    line = text.splitlines().index(bad) + 1
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1, f"-t should reject {bad!r}: exit {rc}\n{out}{err}"
    assert error_lines(err, path) == [line], (
        f"expected exactly one '{path}:{line}: error:' for {bad!r}, got:\n{err}")


def test_check_rejects_bad_resolve_option(tmp_path):
    path = tmp_path / "bad.ini"
    text = "[server]\nzone = cluster.local\n\n[namespace a]\nb = x.example.com resolve=maybe\n"
    path.write_text(text)
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1 and error_lines(err, path) == [5], f"exit {rc}:\n{out}{err}"


def test_check_accepts_good_upstream(tmp_path):
    path = tmp_path / "good.ini"
    path.write_text("[server]\nzone = cluster.local\nlisten = 127.0.0.1:5353\n\n"
                    f"[upstream]\n{GOOD_UPSTREAM}\n\n[namespace a]\n"
                    "b = x.example.com\nc = y.example.com resolve=no\n"
                    "d = z.example.com resolve=yes\n")
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 0, f"exit {rc}:\n{out}{err}"
    path.write_text("[server]\nzone = cluster.local\n\n[upstream]\nservers = none\n")
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 0, f"servers = none: exit {rc}:\n{out}{err}"
