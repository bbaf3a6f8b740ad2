"""test_batch.py -- many queries in one batch: every one gets exactly its own reply.

svcmapd reads UDP queries in batches and sends replies of one size to one client as
one train (UDP segmentation offload, src/udptrain.c). The tests stop svcmapd
(SIGSTOP), queue a burst of queries, and let it go (SIGCONT): it then finds them all
at once, in full batches. Each datagram that comes back must be one complete reply
(dnspython rejects trailing bytes), to the query with its ID, with that query's
answer: a train cut at the wrong size, or merged across clients, fails here.
"""

import os
import select
import signal
import socket
import time
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from conftest import (ZONE, check_answer, check_nxdomain, ipv6_loopback_available, make_query,
                      svc, svcmapd_path)

NS = "burst"
N_SAME = 40  # s00..s39: one A each, replies of one size

CONFIG = f"""[server]
listen = {{listen}}

[namespace {NS}]
""" + "".join(f"s{i:02d} = 10.9.0.{i}\n" for i in range(N_SAME)) + """\
two0 = 10.8.0.1 10.8.0.2
two1 = 10.8.1.1 10.8.1.2
v6   = fd00::1
port = 10.7.0.1:8080
"""


def queries():
    """(query, check) pairs: same-size replies mixed with other sizes, with and
    without EDNS, and names that do not exist."""
    out = []
    for i in range(N_SAME):
        name = svc(f"s{i:02d}.{NS}")
        out.append((make_query(name, "A"), [f"{name} 5 IN A 10.9.0.{i}"]))
    for i in range(0, N_SAME, 4):  # the same answers with an OPT record: another size
        name = svc(f"s{i:02d}.{NS}")
        out.append((make_query(name, "A", edns=0), [f"{name} 5 IN A 10.9.0.{i}"]))
    for label in ("two0", "two1"):
        name = svc(f"{label}.{NS}")
        n = label[-1]
        out.append((make_query(name, "A"), [f"{name} 5 IN A 10.8.{n}.1",
                                            f"{name} 5 IN A 10.8.{n}.2"]))
    name = svc(f"v6.{NS}")
    out.append((make_query(name, "AAAA"), [f"{name} 5 IN AAAA fd00::1"]))
    for i in range(6):
        out.append((make_query(svc(f"x{i:02d}.{NS}"), "A"), None))  # NXDOMAIN
    return out


def collect(sock, want, timeout=5.0):
    """Datagrams from sock until `want` have come or nothing more comes."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        got.append(sock.recv(65535))
    # Anything more (a duplicate) would arrive right behind.
    r, _, _ = select.select([sock], [], [], 0.2)
    if r:
        got.append(sock.recv(65535))
    return got


def check_replies(datagrams, sent):
    by_id = {q.id: (q, expect) for q, expect in sent}
    seen = set()
    for wire in datagrams:
        r = dns.message.from_wire(wire)  # raises on a cut or merged datagram
        assert r.id in by_id, f"reply with an ID never sent: {r.id}"
        assert r.id not in seen, f"two replies to query {r.id}"
        seen.add(r.id)
        q, expect = by_id[r.id]
        r.query, r.query_wire, r.wire = q, q.to_wire(), wire  # for check_header
        if expect is None:
            check_nxdomain(r)
        else:
            check_answer(r, expect)
    missing = sorted(by_id.keys() - seen)
    assert not missing, f"{len(missing)} of {len(sent)} queries unanswered: IDs {missing[:10]}"


def send_stopped(s, datagrams):
    """Send every (socket, wire, address) while s is stopped, then let it go: it
    finds them all queued at once."""
    s.proc.send_signal(signal.SIGSTOP)
    try:
        for sock, wire, addr in datagrams:
            sock.sendto(wire, addr)
    finally:
        s.proc.send_signal(signal.SIGCONT)


def burst(s, host, port, clients=2):
    """Stop s, queue every query from each of `clients` sockets, continue s;
    check what each socket gets back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(clients)]
    try:
        sent = []
        for c in socks:
            c.bind((host, 0))
            # Query IDs differ between sockets too: a reply that reached the wrong
            # client would not match.
            qs = queries()
            for k, (q, _) in enumerate(qs):
                q.id = (len(sent) * 1000 + k) & 0xFFFF
            sent.append(qs)
        send_stopped(s, [(c, q.to_wire(), (host, port))
                         for c, qs in zip(socks, sent) for q, _ in qs])
        for c, qs in zip(socks, sent):
            check_replies(collect(c, len(qs)), qs)
    finally:
        for c in socks:
            c.close()


def test_burst_ipv4(svcmapd):
    s = svcmapd(CONFIG.format(listen="127.0.0.1:@PORT@"))
    for _ in range(3):
        burst(s, "127.0.0.1", s.port)
    # and it still answers one query at a time
    name = svc(f"s07.{NS}")
    check_answer(s.ask(name), [f"{name} 5 IN A 10.9.0.7"])


@pytest.mark.skipif(not ipv6_loopback_available(),
                    reason="::1 cannot be bound on this host (no IPv6 loopback)")
def test_burst_ipv6(svcmapd):
    s = svcmapd(CONFIG.format(listen="[::1]:@PORT6@"), ipv4=False, ipv6=True)
    for _ in range(3):
        burst(s, "::1", s.port6)


def test_burst_srv_and_soa(svcmapd):
    """Other types in the same burst: SRV with its additional A, the apex SOA."""
    s = svcmapd(CONFIG.format(listen="127.0.0.1:@PORT@"))
    name = svc(f"port.{NS}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        qs = [make_query(name, "SRV") for _ in range(20)] + [make_query(ZONE, "SOA")
                                                              for _ in range(20)]
        for k, q in enumerate(qs):
            q.id = k
        send_stopped(s, [(sock, q.to_wire(), ("127.0.0.1", s.port)) for q in qs])
        replies = [dns.message.from_wire(w) for w in collect(sock, len(qs))]
        assert sorted(r.id for r in replies) == list(range(len(qs)))
        for r in replies:
            want = s.ask(r.question[0].name.to_text(), dns.rdatatype.to_text(
                r.question[0].rdtype))
            assert r.to_text().split("\n")[1:] == want.to_text().split("\n")[1:]
    finally:
        sock.close()


def nogso_shim():
    """tests/shim/nogso.c, built by meson next to the tests (SVCMAPD_NOGSO, or
    found beside the svcmapd binary under test)."""
    path = Path(os.environ.get("SVCMAPD_NOGSO") or svcmapd_path().parent / "tests" / "libnogso.so")
    assert path.is_file(), f"the nogso shim is not built: {path}"
    return path


def test_kernel_refuses_trains(svcmapd):
    """A kernel that fails every train with EIO (the shim): each of its replies
    goes out alone, nothing is lost, one warning is logged, and no more trains
    are tried on that socket."""
    env = [f"LD_PRELOAD={nogso_shim()}",
           # the sanitizer build: its runtime need not be first any more
           "ASAN_OPTIONS=" + ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                    "verify_asan_link_order=0"]))]
    s = svcmapd(CONFIG.format(listen="127.0.0.1:@PORT@"), prefix=("env", *env))
    for _ in range(3):
        burst(s, "127.0.0.1", s.port)
    log = s.log()
    warning = "the kernel refuses segmentation offload"
    assert warning in log, log
    # once per socket: one UDP socket per worker (default: one per CPU)
    workers = int(os.environ.get("SVCMAPD_TEST_WORKERS") or os.cpu_count())
    assert 1 <= log.count(warning) <= workers, log
