"""test_upstream_edges.py -- issue 11's upstream defects: what an upstream may not make
svcmapd say, and what a failing one must make it log.

- Failures are logged, one line per target and type in a burst, naming the server and
  what it did.
- An answer of 700 records is served whole over TCP (TC=1 over UDP); one too large to
  cache fails the lookup, logged, never cut short.
- A chain that ends in a CNAME without records keeps the upstream's links.
- An upstream chain that comes back into our zone: the upstream's records for our names
  are never served (with AA=1 or at all); the answer goes on from the mapping.
- An A/AAAA answer that stops at a CNAME has TTL 0, so that dnsmasq in front does not
  cache the target as NODATA for everyone.

Everything runs on loopback: FakeUpstream (conftest) plays the upstream, dnsmasq the
caching forwarder, with --no-resolv and only loopback servers."""

import re
import time

import dns.rdatatype
import pytest

from conftest import ZONE, check_header, check_soa, free_port, rrlines, svc, udp_collect, udp_send
from test_upstream import answer_lines, failing_server, no_ttl, start_dnsmasq
from test_upstream import config as upstream_config

# test_upstream's mapping (web.test-1, alias.test-1 -> mysql.test-2 = 192.168.1.10,
# noresolve.test-1 with resolve=no), and these:
MORE = """
[namespace test-3]
forged = x.example.test
loop   = loop.example.test
redis  = 192.168.1.20, 192.168.1.21
"""
FORGED, LOOP, REDIS = svc("forged.test-3"), svc("loop.test-3"), svc("redis.test-3")
WEB, ALIAS, MYSQL2 = svc("web.test-1"), svc("alias.test-1"), svc("mysql.test-2")
T_FORGED, T_WEB, T_LOOP = "x.example.test.", "web.example.com.", "loop.example.test."
FORGED_A = "6.6.6.6"


def config(servers, timeout=2, negative_ttl=5):
    return upstream_config(servers, timeout, negative_ttl=negative_ttl) + MORE


def all_lines(r):
    return rrlines(r.answer) + rrlines(r.authority) + rrlines(r.additional)


def check_no_forgery(r):
    assert not any(FORGED_A in line for line in all_lines(r)), (
        f"the upstream's record for a name of our zone was served: {all_lines(r)}")


# --------------------------------------------------------------------------- 8. logs


FAILURE = r"\[WARNING\] upstream: web\.example\.com\. A failed: "


@pytest.mark.parametrize("kind,reason", [
    ("unreachable", "Connection refused"),
    ("silent", "timeout"),
    ("servfail", "SERVFAIL"),
    ("refused", "REFUSED"),
    ("tsig", "reply with TSIG records"),
    ("garbage", "unreadable reply"),
])
def test_failure_logged_once_per_burst(svcmapd, upstream, udp_client, kind, reason):
    """Issue 11, 8: a burst of failing lookups of one target (negative-ttl 0: each query
    starts one) gives one warning, naming the target, the type, the server and what it
    did, and what the client gets meanwhile."""
    server, blocker, fake = failing_server(upstream, kind)
    if fake:
        fake.add(T_WEB, "A", "192.0.2.80")
        fake.rule(T_WEB, mode=kind)
    try:
        s = svcmapd(config(server, timeout=1, negative_ttl=0))
        c = udp_client(s.port)
        for _ in range(3 if kind == "silent" else 10):
            r = c.ask(WEB, "A", timeout=3)
            assert no_ttl(answer_lines(r)) == [f"{WEB} IN CNAME {T_WEB}"], answer_lines(r)
        log = s.wait_log("upstream: web.example.com. A failed")
        time.sleep(0.2)
        log = s.log()
        lines = [x for x in log.splitlines() if "upstream:" in x]
        assert len(lines) == 1, "one line for the burst, got:\n" + "\n".join(lines)
        assert re.search(FAILURE + re.escape(f"{server} {reason}") +
                         r"(, [^;]+)?; the CNAME alone for 0 s$", lines[0]), lines[0]
    finally:
        if blocker:
            blocker.close()


def test_failure_log_says_stale_and_counts_held_back(svcmapd, upstream, udp_client):
    """A refresh that fails while the expired records still answer says so; lines held
    back by the rate limit (10 s per target and type) are counted in the next one."""
    up = upstream()
    up.add(T_WEB, "A", "192.0.2.80", ttl=1)
    s = svcmapd(config(up.addr, negative_ttl=0))
    c = udp_client(s.port)
    c.ask(WEB, "A", timeout=3)
    up.rule(T_WEB, mode="servfail")
    time.sleep(1.2)
    r = c.ask(WEB, "A", timeout=3)
    assert no_ttl(answer_lines(r)) == [f"{WEB} IN CNAME {T_WEB}", f"{T_WEB} IN A 192.0.2.80"]
    log = s.wait_log("upstream: web.example.com. A failed")
    assert re.search(FAILURE + re.escape(f"{up.addr} SERVFAIL") + r"(, [^;]+)?; its cached "
                     r"records keep answering, stale once expired \(RFC 8767\)$", log, re.M), log
    # Stale answers for 30 s without asking again: a failure of AAAA lookups instead,
    # for a burst of them, and the same again after the rate limit's 10 s.
    for _ in range(5):
        c.ask(WEB, "AAAA", timeout=3)
    s.wait_log("upstream: web.example.com. AAAA failed")
    t0 = time.monotonic()
    time.sleep(10.3)
    c.ask(WEB, "AAAA", timeout=3)
    log = s.wait_log("upstream: web.example.com. AAAA failed", count=2)
    lines = [x for x in log.splitlines() if "upstream: web.example.com. AAAA" in x]
    assert len(lines) == 2, lines
    assert lines[1].endswith("(4 more like it held back)"), lines
    assert time.monotonic() - t0 < 15


# --------------------------------------------------------------------------- 7. big answers


@pytest.mark.parametrize("mode", ["tc", "oversized"])
def test_700_records(svcmapd, upstream, udp_client, mode):
    """Issue 11, 7: an RRset of 700 A records is cached and served whole over TCP, and
    with TC=1 over UDP.  tc: the upstream truncates over UDP and answers over TCP;
    oversized: it sends the whole 11 KB answer in one UDP datagram anyway, more than
    the 1232 bytes svcmapd offers, which svcmapd asks again over TCP."""
    addrs = [f"10.{i // 250}.{i % 250}.1" for i in range(700)]
    up = upstream()
    up.add(T_WEB, "A", *addrs, ttl=300)
    if mode == "tc":
        up.rule(T_WEB, mode="tc")
    s = svcmapd(config(up.addr))
    r = s.ask(WEB, "A", tcp=True, one_rr=True, timeout=5)
    check_header(r, "NOERROR")
    got = answer_lines(r)
    assert got[0] == f"{WEB} 5 IN CNAME {T_WEB}", got[:3]
    assert sorted(x.split()[-1] for x in got[1:]) == sorted(addrs), (
        f"{len(got) - 1} of the 700 addresses over TCP")
    assert all(x.split()[0] == T_WEB for x in got[1:]), got[:3]
    assert [q.transport for q in up.queries(T_WEB)] == ["udp", "tcp"], up.queries()

    c = udp_client(s.port)
    r = c.ask(WEB, "A", edns=0)
    check_header(r, "NOERROR", tc=True)
    r = s.ask(WEB, "A", tcp=True, timeout=5)
    assert len(r.answer[1]) == 700, "the cached answer, whole, again"


def test_answer_too_large_to_cache(svcmapd, upstream):
    """An answer larger than a reply can carry after our CNAME (4080 A records, 65 KB in
    the upstream's TCP message) fails the lookup: the CNAME alone, and a warning that
    says why; never a part of it."""
    addrs = [f"10.{i // 250}.{i % 250}.2" for i in range(4080)]
    up = upstream()
    up.add(T_WEB, "A", *addrs, ttl=300)
    up.rule(T_WEB, mode="tc")
    s = svcmapd(config(up.addr))
    r = s.ask(WEB, "A", tcp=True, one_rr=True, timeout=5)
    check_header(r, "NOERROR")
    assert no_ttl(answer_lines(r)) == [f"{WEB} IN CNAME {T_WEB}"], (
        f"{len(r.answer)} records: a part of an answer too large to cache was served")
    log = s.wait_log("answer too large")
    assert re.search(rf"\[WARNING\] upstream: web\.example\.com\. A failed: "
                     rf"{re.escape(up.addr)} answer too large to cache \(over \d+ bytes\)", log), log


# --------------------------------------------------------------------------- 15. dangling


@pytest.mark.parametrize("rcode", ["NOERROR", "NXDOMAIN"])
def test_dangling_upstream_chain(svcmapd, upstream, udp_client, rcode):
    """Issue 11, 15: web.example.com CNAME other.example.com, which has no A (NODATA) or
    does not exist (NXDOMAIN): the answer keeps the upstream's link after our CNAME
    (TTL 0: it stops at a CNAME), and is cached for the negative TTL (2 s here), no
    longer."""
    other = "other.example.com."
    up = upstream()
    up.add(T_WEB, "CNAME", other, ttl=300)
    if rcode == "NOERROR":
        up.add(other, "AAAA", "2001:db8::1", ttl=300)
    s = svcmapd(config(up.addr, negative_ttl=2))
    c = udp_client(s.port)
    for _ in range(2):
        r = c.ask(WEB, "A", timeout=5)
        check_header(r, "NOERROR")
        assert no_ttl(answer_lines(r)) == [f"{WEB} IN CNAME {T_WEB}",
                                           f"{T_WEB} IN CNAME {other}"], answer_lines(r)
        assert r.answer[0].ttl == 0 and 0 < r.answer[1].ttl <= 300, answer_lines(r)
        assert r.authority == [] and r.additional == [], all_lines(r)
    assert up.count(T_WEB) == 1, f"cached: {up.queries()}"
    time.sleep(2.5)
    c.ask(WEB, "A", timeout=5)
    assert up.count(T_WEB) == 2, f"no longer than the negative TTL: {up.queries()}"


# --------------------------------------------------------------------------- 5. in-zone chains


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_forged_in_zone_chain(svcmapd, upstream, tcp):
    """Issue 11, 5: x.example.test CNAME mysql.test-2.svc.cluster.local plus that name's A
    6.6.6.6 from the upstream.  The upstream's link is kept (it is about its own name);
    mysql.test-2's address is the mapping's, 192.168.1.10, with the mapping's TTL."""
    up = upstream()
    up.add(T_FORGED, "CNAME", MYSQL2, ttl=300)
    up.add(MYSQL2, "A", FORGED_A, ttl=3000)
    up.add(MYSQL2, "AAAA", "2001:db8::666", ttl=3000)
    up.rule(T_FORGED, extra=[f"{MYSQL2} 3000 IN TXT \"forged\""])
    s = svcmapd(config(up.addr))
    r = s.ask(FORGED, "A", tcp=tcp, one_rr=True, timeout=5)
    check_header(r, "NOERROR")
    check_no_forgery(r)
    assert no_ttl(answer_lines(r)) == [f"{FORGED} IN CNAME {T_FORGED}",
                                       f"{T_FORGED} IN CNAME {MYSQL2}",
                                       f"{MYSQL2} IN A 192.168.1.10"], answer_lines(r)
    assert r.answer[0].ttl == 5 and 0 < r.answer[1].ttl <= 300, answer_lines(r)
    assert r.answer[2].ttl == 5, f"the mapping's TTL for the mapping's record: {answer_lines(r)}"
    assert r.authority == [] and r.additional == [], all_lines(r)

    # No AAAA in the mapping: the links, NOERROR, and our SOA says so (RFC 2308 2.2).
    r = s.ask(FORGED, "AAAA", tcp=tcp, one_rr=True, timeout=5)
    check_header(r, "NOERROR")
    assert no_ttl(answer_lines(r)) == [f"{FORGED} IN CNAME {T_FORGED}",
                                       f"{T_FORGED} IN CNAME {MYSQL2}"], answer_lines(r)
    assert "2001:db8::666" not in " ".join(all_lines(r)), all_lines(r)
    assert len(r.authority) == 1, rrlines(r.authority)
    check_soa(r.authority[0], ZONE, 5)


@pytest.mark.parametrize("target,rdtype,want,soa", [
    # not in the mapping: the chain ends there (NOERROR, as CoreDNS), our SOA says why
    (svc("nosuch.test-2"), "A", [], True),
    # the apex: NODATA
    (ZONE, "A", [], True),
    # an endpoint name of a service of several addresses
    ("192-168-1-20." + REDIS, "A", ["192-168-1-20." + REDIS + " IN A 192.168.1.20"], False),
    # a service of several addresses: all of them
    (REDIS, "A", [f"{REDIS} IN A 192.168.1.20", f"{REDIS} IN A 192.168.1.21"], False),
    # a hostname service chained inside the zone
    (ALIAS, "A", [f"{ALIAS} IN CNAME {MYSQL2}", f"{MYSQL2} IN A 192.168.1.10"], False),
    # a hostname service that leaves the zone again: its CNAME, then the upstream's
    # records for its target
    (WEB, "A", [f"{WEB} IN CNAME {T_WEB}", f"{T_WEB} IN A 192.0.2.80"], False),
    # the same, in the upstream's letter case: owners keep it, the mapping answers
    ("Mysql.TEST-2.svc.Cluster.Local.", "A", ["Mysql.TEST-2.svc.Cluster.Local. IN A 192.168.1.10"],
     False),
], ids=["nxdomain", "apex", "endpoint", "several", "in-zone-chain", "leaves-again",
        "letter-case"])
def test_chain_back_into_zone(svcmapd, upstream, udp_client, target, rdtype, want, soa):
    up = upstream()
    up.add(T_FORGED, "CNAME", target, ttl=300)
    up.add(target, "A", FORGED_A, ttl=3000)
    up.add(T_WEB, "A", "192.0.2.80", ttl=300)
    s = svcmapd(config(up.addr))
    c = udp_client(s.port)
    # The nested lookup (web's target) runs when the first answer is cached; a second
    # query finds both in the cache.
    for _ in range(2):
        r = c.ask(FORGED, rdtype, timeout=5)
    check_header(r, "NOERROR")
    check_no_forgery(r)
    got = no_ttl(answer_lines(r))
    assert got[:2] == [f"{FORGED} IN CNAME {T_FORGED}", f"{T_FORGED} IN CNAME {target}"], got
    assert sorted(got[2:]) == sorted(want), f"after the upstream's link: {got[2:]}"
    if soa:
        assert len(r.authority) == 1, rrlines(r.authority)
        check_soa(r.authority[0], ZONE, 5)
        assert r.answer[0].ttl == 5, "the chain ends in the zone: our SOA, our TTL"
    else:
        assert r.authority == [], rrlines(r.authority)
    assert r.additional == [], rrlines(r.additional)
    assert up.count(target) == 0, f"a name of the zone was asked upstream: {up.queries()}"


def test_chain_back_into_zone_loop(svcmapd, upstream, udp_client):
    """loop.example.test CNAME loop.test-1.svc.cluster.local, whose target is
    loop.example.test: the answer stops at the upstream's link (and, stopping at a
    CNAME, has TTL 0) instead of going round."""
    up = upstream()
    up.add(T_LOOP, "CNAME", LOOP, ttl=300)
    up.add(LOOP, "A", FORGED_A, ttl=300)
    s = svcmapd(config(up.addr))
    c = udp_client(s.port)
    for tcp in (False, True):
        r = s.ask(LOOP, "A", tcp=tcp, one_rr=True, timeout=5) if tcp else c.ask(LOOP, "A")
        check_header(r, "NOERROR")
        check_no_forgery(r)
        assert answer_lines(r)[0] == f"{LOOP} 0 IN CNAME {T_LOOP}", answer_lines(r)
        assert no_ttl(answer_lines(r)[1:]) == [f"{T_LOOP} IN CNAME {LOOP}"], answer_lines(r)
        assert r.authority == [] and r.additional == [], all_lines(r)


# --------------------------------------------------------------------------- 16. dnsmasq


@pytest.mark.parametrize("case", ["servers-none", "resolve-no", "upstream-down", "dangling"])
def test_cname_alone_poisons_no_cache(svcmapd, upstream, daemons, tmp_path, case):
    """Issue 11, 16: dnsmasq in front of svcmapd (for cluster.local) and of another
    server (for everything else).  An A answer of svcmapd that stops at a CNAME used to
    make dnsmasq cache the CNAME's target as NODATA for the CNAME's TTL (dnsmasq's
    extract_addresses(): no SOA for the target, "inherit the CNAME's TTL"), so that
    every client of that dnsmasq got no address for a name its own server has.  TTL 0
    on the CNAME keeps dnsmasq from caching any of it."""
    other = "other.example.com."
    theirs = upstream()            # dnsmasq's server for everything else
    for name, address in ((T_WEB, "192.0.2.80"), ("db.example.com.", "192.0.2.81"),
                          (other, "192.0.2.82")):
        theirs.add(name, "A", address, ttl=300)
    ours = upstream()              # svcmapd's: web.example.com ends without an address
    ours.add(T_WEB, "CNAME", other, ttl=300)
    ours.add(other, "AAAA", "2001:db8::1", ttl=300)
    servers = {"servers-none": "none", "upstream-down": f"127.0.0.1:{free_port()}"}
    s = svcmapd(config(servers.get(case, ours.addr)))
    fw = start_dnsmasq(daemons, tmp_path, s.port, default=theirs.port)
    name, target, poisoned = {
        "resolve-no": (svc("noresolve.test-1"), "db.example.com.", "db.example.com."),
        "dangling": (WEB, T_WEB, other)}.get(case, (WEB, T_WEB, T_WEB))

    r = udp_collect(udp_send(fw.port, name, "A", rd=True, edns=0), 5.0)
    assert r is not None and r.rcode() == 0, f"no answer through dnsmasq:\n{fw.log()}"
    assert no_ttl(answer_lines(r))[0] == f"{name} IN CNAME {target}", answer_lines(r)
    assert all(rr.rdtype == dns.rdatatype.CNAME for rr in r.answer), answer_lines(r)
    want = [f"{poisoned} IN A {theirs.data[poisoned][0][2]}"]
    for _ in range(2):
        w = udp_collect(udp_send(fw.port, poisoned, "A", rd=True, edns=0), 5.0)
        assert w is not None, f"no answer for {poisoned} through dnsmasq:\n{fw.log()}"
        assert no_ttl(answer_lines(w)) == want, (
            f"{poisoned} poisoned in dnsmasq's cache by svcmapd's answer: {answer_lines(w)}\n"
            f"{fw.log()}")
    assert f"cached {poisoned.rstrip('.')} is NODATA" not in fw.log(), fw.log()
    assert r.answer[0].ttl == 0, answer_lines(r)
