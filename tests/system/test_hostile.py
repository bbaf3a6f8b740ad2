"""test_hostile.py -- hostile input and bad days.

Malformed messages of every kind, responses sent as queries, random bytes, TCP
framing abuse, connection floods, a client that never reads, and amplification.
After each batch the server must still be alive and answer a valid query correctly
over UDP and over TCP within a second (healthy()); the fixtures' teardown also fails
the test on a sanitizer or valgrind report in the server's stderr.

README "Answers": a malformed message gets FORMERR when a header can be read, else
nothing; a response (QR=1) is never answered.  "Transport": size limits, TCP
timeouts, tcp-max-connections, clients that do not read.
"""

import random
import select
import selectors
import socket
import struct
import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from conftest import (QR, SLOW, TC, addresses, check_answer, check_header, check_refused,
                      check_truncated, flagbits, frame, make_query, parse, rrlines, svc,
                      tcp_connect, tcp_read_msg)

GOOD = svc("mysql.test-2")
GOOD_ANSWER = [f"{GOOD} 5 IN A 192.168.1.10"]
MARKER_ID = 0xBEEF      # the valid query that ends every batch


def config(server_extra=""):
    """Own servers: the names healthy() and the size tests ask for."""
    return f"""[server]
listen = 127.0.0.1:@PORT@
{server_extra}

[namespace test-2]
mysql  = 192.168.1.10
mid    = {addresses("10.15", 15)}
big100 = {addresses("10.100", 100)}
big200 = {addresses("10.200", 200)}
big300 = {addresses("10.30", 300)}
"""


def healthy(s, what="after the batch"):
    """The server is alive and answers a valid query right, over UDP and TCP, in 1 s each."""
    assert s.proc.poll() is None, (
        f"svcmapd died {what} (exit {s.proc.returncode}); stderr tail:\n"
        + "\n".join(s.log().splitlines()[-30:]))
    for tcp in (False, True):
        t0 = time.monotonic()
        r = s.ask(GOOD, "A", tcp=True, timeout=1.0) if tcp else s.ask(GOOD, "A", timeout=1.0)
        elapsed = time.monotonic() - t0
        check_answer(r, GOOD_ANSWER)
        assert elapsed <= 1.0 * SLOW + 0.2, (
            f"{'TCP' if tcp else 'UDP'} answer {what} took {elapsed:.2f}s")


def peer_closed(sock, timeout):
    """True if the peer closes (EOF or reset) within timeout, False if the socket stays
    open and silent; fails if data arrives."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    assert data == b"", f"expected silence or close, got data {data!r}"
    return True


# --------------------------------------------------------------------------- wire


def header(qid, flags=0, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def name_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def question(name=GOOD, rdtype=1, rdclass=1):
    return name_wire(name) + struct.pack("!HH", rdtype, rdclass)


def opt(rdata=b"", size=1232, version=0, flags=0, rdlen=None, owner=b"\0"):
    """An OPT RR (RFC 6891 6.1.2); rdlen may lie."""
    return owner + struct.pack("!HHBBHH", 41, size, 0, version, flags,
                               len(rdata) if rdlen is None else rdlen) + rdata


def long_name(total, suffix="test-2.svc.cluster.local."):
    """A name whose wire form is exactly `total` bytes, ending in suffix."""
    rem = total - len(name_wire(suffix))
    labels = []
    while rem > 0:
        n = min(63, rem - 1)
        if rem - (n + 1) == 1:      # one byte left cannot be a label
            n -= 1
        labels.append("x" * n)
        rem -= n + 1
    name = ".".join(labels + [suffix])
    assert len(name_wire(name)) == total
    return name


def build_batches():
    """name -> [(wire, expected rcode text or None for no reply at all)]; IDs unique."""
    ids = iter(range(0x1000, 0x8000))
    b = {}
    valid = make_query(GOOD, "A").to_wire()
    q = question()
    tc = struct.pack("!HH", 1, 1)

    b["truncated-header"] = [(bytes([0x12, 0x34]) + valid[2:n] if n >= 2 else valid[:n], None)
                             for n in range(0, 12)]
    b["question-missing"] = [
        (header(next(ids)), "FORMERR"),                         # QDCOUNT 1, nothing after
        (header(next(ids)) + b"\x05mys", "FORMERR"),
        (header(next(ids)) + name_wire(GOOD), "FORMERR"),       # no type/class
        (header(next(ids)) + name_wire(GOOD) + b"\x00\x01\x00", "FORMERR"),
    ]
    b["label-overflow"] = [
        (header(next(ids)) + b"\x40" + b"a" * 64 + b"\0" + tc, "FORMERR"),
        (header(next(ids)) + b"\x7f" + b"a" * 127 + b"\0" + tc, "FORMERR"),
        (header(next(ids)) + b"\x80" + b"a" * 10 + b"\0" + tc, "FORMERR"),   # 10xxxxxx
        (header(next(ids)) + b"\xbf" + b"a" * 10 + b"\0" + tc, "FORMERR"),
        (header(next(ids)) + b"\x3f" + b"a" * 10, "FORMERR"),               # runs past the end
        (header(next(ids)) + b"\x05mysql\x3fabc", "FORMERR"),
        (header(next(ids)) + b"\x05mysql\x06test-2", "FORMERR"),            # no root label
        (header(next(ids)) + b"\x05mysql\x3f" + b"b" * 63, "FORMERR"),
    ]
    b["name-length"] = [
        (header(next(ids)) + question(long_name(255)), "NXDOMAIN"),  # the longest legal name
        (header(next(ids)) + question(long_name(256)), "FORMERR"),
        (header(next(ids)) + question(long_name(300)), "FORMERR"),
        (header(next(ids)) + b"\x01a" * 128 + b"\0" + tc, "FORMERR"),  # 257 bytes of 1-char labels
        (header(next(ids)) + b"\x3f" + b"y" * 63 + b"\x3f" + b"y" * 63 + b"\x3f" + b"y" * 63
         + b"\x3f" + b"y" * 63 + b"\x3f" + b"y" * 63 + b"\0" + tc, "FORMERR"),
    ]
    b["compression-in-question"] = [
        (header(next(ids)) + b"\xc0\x0c" + tc, "FORMERR"),              # points at itself
        (header(next(ids)) + b"\xc0\x12" + tc + b"\x05mysql\0", "FORMERR"),  # forward
        (header(next(ids)) + b"\xc0\xff" + tc, "FORMERR"),              # out of bounds
        (header(next(ids)) + b"\xff\xff" + tc, "FORMERR"),
        (header(next(ids)) + b"\xc0\x0e\xc0\x0c" + tc, "FORMERR"),      # a loop of two
        (header(next(ids)) + b"\x05mysql\xc0\x12" + tc, "FORMERR"),     # label, then itself
        (header(next(ids)) + b"\x05mysql\xc0\x0c" + tc, "FORMERR"),     # back to its start
        (header(next(ids)) + b"\xc0\x00" + tc, "FORMERR"),              # into the header
        (header(next(ids)) + b"\xc0", "FORMERR"),                       # half a pointer
    ]
    b["huge-counts"] = [
        (header(next(ids), qd=65535), "FORMERR"),
        (header(next(ids), qd=65535) + q, "FORMERR"),
        (header(next(ids), an=65535) + q, "FORMERR"),
        (header(next(ids), ns=65535) + q, "FORMERR"),
        (header(next(ids), ar=65535) + q, "FORMERR"),
        (header(next(ids), ar=65535) + q + opt(), "FORMERR"),
        (header(next(ids), qd=65535, an=65535, ns=65535, ar=65535) + b"\0", "FORMERR"),
        (header(next(ids), qd=0, an=65535, ns=65535, ar=65535), "FORMERR"),
    ]
    b["opt-overrun"] = [
        (header(next(ids), ar=1) + q + opt(struct.pack("!HH", 100, 16) + b"abcd"), "FORMERR"),
        (header(next(ids), ar=1) + q + opt(struct.pack("!HH", 10, 8) + b"abc"), "FORMERR"),
        (header(next(ids), ar=1) + q + opt(struct.pack("!HH", 10, 0xffff)), "FORMERR"),
        (header(next(ids), ar=1) + q + opt(b"\x00\x64", rdlen=2), "FORMERR"),  # option header cut
        (header(next(ids), ar=1) + q + opt(b"abcd", rdlen=100), "FORMERR"),     # RDATA past the end
        (header(next(ids), ar=1) + q + opt()[:7], "FORMERR"),                   # fixed part cut
        (header(next(ids), ar=1) + q + opt(owner=b"\xc0\x0c"), "FORMERR"),     # owner not root
        (header(next(ids), ar=1) + q + opt(owner=b"\x01a\0"), "FORMERR"),
    ]
    b["two-opts"] = [
        (header(next(ids), ar=2) + q + opt() + opt(), "FORMERR"),
        (header(next(ids), ar=2) + q + opt(size=4096) + opt(version=1), "FORMERR"),
        (header(next(ids), ar=2) + q + opt(struct.pack("!HH", 10, 8) + b"12345678")
         + opt(struct.pack("!HH", 10, 8) + b"87654321"), "FORMERR"),
        (header(next(ids), ns=1, ar=1) + q + opt() + opt(), "FORMERR"),   # one in AUTHORITY
    ]
    real_reply = header(next(ids), QR | 0x0400, an=1) + q + (
        b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([192, 168, 1, 10]))
    b["responses"] = [
        (real_reply, None),
        (header(next(ids), QR) + q, None),
        (header(next(ids), QR | 0x0400 | 3) + q, None),                  # NXDOMAIN response
        (header(next(ids), QR | (4 << 11)) + q, None),                   # NOTIFY response
        (header(next(ids), QR | (5 << 11)) + q, None),                   # UPDATE response
        (header(next(ids), QR | (15 << 11)) + q, None),
        (header(next(ids), QR, qd=65535) + b"\xc0\x0c", None),           # malformed too
        (header(next(ids), QR, qd=0), None),
        (header(next(ids), QR, ar=1) + q + opt(version=1), None),
        (header(next(ids), QR | 0x0200) + q, None),                      # TC response
    ]
    return b


BATCHES = build_batches()


def check_reply(wire, expected, sent):
    """A reply to a malformed message: the right ID, QR, the expected rcode, no records
    (NXDOMAIN aside), never larger than 512 bytes."""
    qid = struct.unpack("!H", sent[:2])[0]
    assert len(wire) <= 512, f"reply to a {len(sent)}-byte message is {len(wire)} bytes"
    try:
        r = dns.message.from_wire(wire)
    except Exception as e:      # noqa: BLE001 -- any parse error is the finding
        pytest.fail(f"unparseable reply {wire.hex()} to {sent.hex()}: {e}")
    assert r.id == qid, f"reply ID {r.id:#x}, query ID {qid:#x}"
    assert flagbits(r) & QR, "QR not set in the reply"
    got = dns.rcode.to_text(r.rcode())
    assert got == expected, f"reply to {sent.hex()}: expected {expected}, got {got}"
    if expected != "NXDOMAIN":
        assert r.answer == [] and r.authority == [], (
            f"{expected} with records: {rrlines(r.answer + r.authority)}")
    return r


def expected_replies(items):
    return [(struct.unpack("!H", w[:2])[0], want, w) for w, want in items if want is not None]


def udp_batch(port, wires, timeout=2.0):
    """Send wires and then the marker query from one socket; return the replies that came
    before the marker's, and the marker's (UDP on loopback keeps the order, and one
    socket always reaches the same worker)."""
    marker = make_query(GOOD, "A", qid=MARKER_ID)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        for w in wires:
            sock.send(w)
        sock.send(marker.to_wire())
        before = []
        deadline = time.monotonic() + timeout * SLOW
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no reply to the valid query after the batch within {timeout}s"
            sock.settimeout(left)
            try:
                w = sock.recv(65535)
            except ConnectionRefusedError:
                pytest.fail("ICMP port unreachable: the server is gone")
            except socket.timeout:
                continue
            if w[:2] == marker.to_wire()[:2]:
                r = parse(w)
                r.query, r.query_wire, r.wire = marker, marker.to_wire(), w
                return before, r
            before.append(w)


def tcp_batch(port, wires, timeout=3.0):
    """Send wires as frames on one connection, then the marker query.  Returns the
    replies before the marker's and the marker's reply, or (replies, None) if the server
    closed the connection first."""
    marker = make_query(GOOD, "A", qid=MARKER_ID)
    with tcp_connect(port, timeout=timeout) as sock:
        sock.sendall(b"".join(frame(w) for w in wires) + frame(marker.to_wire()))
        before = []
        while True:
            try:
                w = tcp_read_msg(sock)
            except (EOFError, ConnectionResetError):
                return before, None
            if w[:2] == marker.to_wire()[:2]:
                r = parse(w)
                r.query, r.query_wire, r.wire = marker, marker.to_wire(), w
                return before, r
            before.append(w)


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_malformed_batch(std, batch, transport):
    items = BATCHES[batch]
    if transport == "tcp":
        # a zero-length frame closes the connection (test_tcp_zero_length_frame)
        items = [(w, want) for w, want in items if len(w) > 0]
        before, marker = tcp_batch(std.port, [w for w, _ in items])
    else:
        before, marker = udp_batch(std.port, [w for w, _ in items])
    want = expected_replies(items)
    got_ids = [struct.unpack("!H", w[:2])[0] if len(w) >= 2 else None for w in before]
    if marker is None:
        # The server may close a connection that sent garbage (RFC 7766 6.2.4 lets it):
        # then the replies it did send must be a prefix of the expected ones.
        assert got_ids == [i for i, _, _ in want][:len(before)], (
            f"replies before the close: expected IDs {[hex(i) for i, _, _ in want]}, "
            f"got {[hex(i) if i is not None else i for i in got_ids]}")
    else:
        assert got_ids == [i for i, _, _ in want], (
            f"{batch} over {transport}: expected replies to IDs "
            f"{[hex(i) for i, _, _ in want]} (in order), got "
            f"{[hex(i) if i is not None else i for i in got_ids]}")
        check_answer(marker, GOOD_ANSWER)
    for w, (_, rcode, sent) in zip(before, want):
        check_reply(w, rcode, sent)
    healthy(std, f"after the {batch} batch over {transport}")


def padded_query(qid, size):
    """A query for GOOD with an OPT whose padding option (RFC 7830) makes it size bytes."""
    base = header(qid, ar=1) + question() + opt()
    wire = header(qid, ar=1) + question() + opt(struct.pack("!HH", 12, size - len(base) - 4)
                                                + b"\0" * (size - len(base) - 4))
    assert len(wire) == size
    return wire


def test_oversized_udp_datagram(std):
    """A valid query padded to 5000 bytes with an EDNS padding option: more than the
    server reads from a datagram (UDP_QUERY_MAX 4096), so it is cut and gets FORMERR;
    a 4000-byte one is a valid query and is answered."""
    for size, want in ((5000, "FORMERR"), (65000, "FORMERR"), (4000, "NOERROR")):
        wire = padded_query(0x5000 + size % 1000, size)
        before, marker = udp_batch(std.port, [wire])
        assert len(before) == 1, f"{size}-byte query: expected one reply, got {len(before)}"
        r = parse(before[0])
        assert r.id == 0x5000 + size % 1000 and flagbits(r) & QR
        assert dns.rcode.to_text(r.rcode()) == want, (
            f"{size}-byte query: expected {want}, got {dns.rcode.to_text(r.rcode())}")
        check_answer(marker, GOOD_ANSWER)
    healthy(std)


def test_largest_tcp_message(std):
    """A 65535-byte TCP message (a query with a big padding option) is answered."""
    wire = padded_query(0x5151, 65535)
    q = parse(wire)
    before, marker = tcp_batch(std.port, [wire])
    assert marker is not None, "connection closed after a 65535-byte query"
    assert len(before) == 1
    r = parse(before[0])
    r.query, r.query_wire, r.wire = q, wire, before[0]
    check_answer(r, GOOD_ANSWER)
    healthy(std)


# --------------------------------------------------------------------------- responses


def test_responses_never_answered_no_reflection(std):
    """QR=1 messages get no reply at all, over UDP and TCP; a real reply of the server,
    sent back to it from a second socket (a spoofed reflection), gets none either."""
    items = BATCHES["responses"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.connect(("127.0.0.1", std.port))
        b.connect(("127.0.0.1", std.port))
        # A real reply, as a client would have received it.
        q = make_query(GOOD, "A", edns=0, qid=0x4444)
        a.send(q.to_wire())
        a.settimeout(1.0 * SLOW)
        reply = a.recv(65535)
        assert parse(reply).id == 0x4444
        for w, _ in items:
            a.send(w)
        b.send(reply)                           # valid-looking response from elsewhere
        nxreply = std.ask(svc("nope.test-2"), "A").wire
        b.send(nxreply)
        for sock, who in ((a, "the sender"), (b, "the second socket")):
            r, _, _ = select.select([sock], [], [], 0.5)
            assert not r, f"{who} got a reply to a response: {sock.recv(65535).hex()}"
    with tcp_connect(std.port) as c:
        c.sendall(b"".join(frame(w) for w, _ in items) + frame(reply))
        c.settimeout(0.5)
        try:
            data = c.recv(2)
        except socket.timeout:
            data = b""
        except ConnectionResetError:
            data = b""
        assert data == b"", f"server answered a response over TCP: {data!r}"
    healthy(std)


# --------------------------------------------------------------------------- random bytes


def test_random_datagrams(std):
    """3000 datagrams of random bytes, 0..600 long (fixed seed), in chunks of 100 each
    followed by a valid query: any reply has the datagram's ID, QR=1, at most 512 bytes;
    the valid query is always answered right."""
    rng = random.Random(8906)
    total_replies = 0
    for chunk in range(30):
        wires = []
        for _ in range(100):
            w = rng.randbytes(rng.randint(0, 600))
            if w[:2] == MARKER_ID.to_bytes(2, "big"):
                w = b"\0\0" + w[2:]
            wires.append(w)
        before, marker = udp_batch(std.port, wires)
        check_answer(marker, GOOD_ANSWER)
        ids = {w[:2] for w in wires if len(w) >= 12 and not w[2] & 0x80}
        for w in before:
            assert w[:2] in ids, f"reply {w[:12].hex()} matches no datagram with a header"
            assert len(w) >= 12 and w[2] & 0x80, f"reply without QR: {w[:12].hex()}"
            assert len(w) <= 512, f"{len(w)}-byte reply to random bytes"
        total_replies += len(before)
    assert total_replies > 0, "random datagrams with a readable header got no reply at all"
    healthy(std)


def test_random_tcp(std):
    """Random frames on several connections (each then a valid query), and unframed
    random byte streams; the server answers or closes, and keeps serving."""
    rng = random.Random(7766)
    for conn in range(10):
        wires = [rng.randbytes(rng.randint(1, 600)) for _ in range(50)]
        wires = [w if w[:2] != MARKER_ID.to_bytes(2, "big") else b"\0\0" + w[2:] for w in wires]
        before, marker = tcp_batch(std.port, wires)
        if marker is not None:
            check_answer(marker, GOOD_ANSWER)
        for w in before:
            assert len(w) >= 12 and w[2] & 0x80, f"reply without QR: {w[:12].hex()}"
    for conn in range(20):
        with tcp_connect(std.port) as c:
            try:
                c.sendall(rng.randbytes(rng.randint(1, 5000)))
            except (ConnectionResetError, BrokenPipeError):
                pass
    healthy(std)


# --------------------------------------------------------------------------- TCP framing


def test_tcp_zero_length_frame(std):
    """A zero-length frame closes the connection (after answering what came before)."""
    with tcp_connect(std.port) as c:
        c.sendall(frame(make_query(GOOD, "A").to_wire()))
        tcp_read_msg(c)
        c.sendall(b"\0\0")
        assert peer_closed(c, 2.0 * SLOW), "connection still open 2 s after a zero-length frame"
    with tcp_connect(std.port) as c:
        c.sendall(b"\0\0")
        assert peer_closed(c, 2.0 * SLOW), "connection still open 2 s after a zero-length frame"
    healthy(std)


STUCK = {
    "oversized-65535": b"\xff\xff" + b"\x12\x34\x01\x00",
    "prefix-only": b"\x00\x30",
    "half-prefix": b"\x00",
    "half-message": frame(make_query(GOOD, "A").to_wire())[:20],
}


@pytest.mark.parametrize("kind", sorted(STUCK))
def test_tcp_stuck_message_closed_after_message_timeout(svcmapd, kind):
    """tcp-message-timeout = 1 (idle 10): a connection that stops in the middle of a
    message is closed after about 1 s, while another connection is served meanwhile."""
    s = svcmapd(config("tcp-message-timeout = 1\ntcp-idle-timeout = 10"))
    other = tcp_connect(s.port)
    with tcp_connect(s.port) as stuck, other:
        stuck.sendall(STUCK[kind])
        t0 = time.monotonic()
        stuck.setblocking(False)
        served = 0
        closed_at = None
        while time.monotonic() - t0 < 6.0:
            q = make_query(GOOD, "A", qid=0x6000 + served)
            t1 = time.monotonic()
            other.sendall(frame(q.to_wire()))
            r = parse(tcp_read_msg(other))
            assert time.monotonic() - t1 <= 1.0 * SLOW, "the other connection waited"
            assert r.id == q.id and [x.to_text() for x in r.answer] == GOOD_ANSWER
            served += 1
            ready, _, _ = select.select([stuck], [], [], 0.1)
            if ready:
                try:
                    data = stuck.recv(1)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                assert data == b"", f"got data on the stuck connection: {data!r}"
                closed_at = time.monotonic() - t0
                break
        assert closed_at is not None, (
            f"{kind}: connection stuck mid-message still open {time.monotonic() - t0:.1f}s "
            f"later (tcp-message-timeout = 1)")
        assert 0.5 <= closed_at <= 3.5, f"{kind}: closed after {closed_at:.2f}s, expected ~1 s"
        assert served >= 2, "the other connection was not served meanwhile"
    healthy(s)


def test_tcp_one_byte_per_write(std):
    q = make_query(GOOD, "A")
    data = frame(q.to_wire())
    with tcp_connect(std.port) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.sendall(data[i:i + 1])
            time.sleep(0.01)
        w = tcp_read_msg(c)
    r = parse(w)
    r.query, r.query_wire, r.wire = q, q.to_wire(), w
    check_answer(r, GOOD_ANSWER)
    healthy(std)


def test_tcp_100_pipelined(std):
    """100 queries in one write: 100 replies, each matched by ID to its question."""
    names = [(GOOD, "A", "NOERROR", ["192.168.1.10"]),
             (svc("nothing.test-2"), "A", "NXDOMAIN", []),
             (svc("redis.test-2"), "A", "NOERROR", ["192.168.1.20", "192.168.1.21"]),
             ("example.com.", "A", "REFUSED", []),
             (svc("big60.test-2"), "A", "NOERROR", [f"10.60.0.{i}" for i in range(1, 61)]),
             (svc("ldap.test-2"), "AAAA", "NOERROR", ["2001:db8::5"])]
    queries = {}
    for i in range(100):
        name, rdtype, rcode, addrs = names[i % len(names)]
        q = make_query(name, rdtype, qid=0x2000 + i, edns=0 if i % 2 else None)
        queries[q.id] = (q, rcode, sorted(addrs))
    with tcp_connect(std.port, timeout=5) as c:
        c.sendall(b"".join(frame(q.to_wire()) for q, _, _ in queries.values()))
        replies = [tcp_read_msg(c) for _ in range(100)]
    seen = set()
    for w in replies:
        r = parse(w)
        assert r.id in queries and r.id not in seen, f"unexpected or repeated ID {r.id:#x}"
        seen.add(r.id)
        q, rcode, addrs = queries[r.id]
        r.query, r.query_wire, r.wire = q, q.to_wire(), w
        check_header(r, rcode, aa=rcode != "REFUSED")
        got = sorted(rd.to_text() for rrset in r.answer for rd in rrset)
        assert got == addrs, f"{q.question[0].name}: expected {addrs}, got {got}"
    assert len(seen) == 100
    healthy(std)


# --------------------------------------------------------------------------- floods


def open_connections(port, n):
    socks = []
    try:
        for _ in range(n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(c)
            c.settimeout(5.0 * SLOW)
            c.connect(("127.0.0.1", port))
    except BaseException:
        for c in socks:
            c.close()
        raise
    return socks


def test_tcp_500_concurrent_connections(svcmapd):
    """500 connections open at once, each sends one query: all 500 answered."""
    s = svcmapd(config("tcp-max-connections = 1024\ntcp-idle-timeout = 30"))
    socks = open_connections(s.port, 500)
    try:
        sel = selectors.DefaultSelector()
        want = {}
        for i, c in enumerate(socks):
            q = make_query(GOOD, "A", qid=i + 1)
            c.sendall(frame(q.to_wire()))
            c.setblocking(False)
            want[c.fileno()] = q.id
            sel.register(c, selectors.EVENT_READ, bytearray())
        got = {}
        deadline = time.monotonic() + 15 * SLOW
        while len(got) < len(socks) and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                buf = key.data
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    got[key.fileobj.fileno()] = None
                    continue
                buf += data
                if len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    got[key.fileobj.fileno()] = bytes(buf[2:])
                    sel.unregister(key.fileobj)
        sel.close()
        closed = [fd for fd, w in got.items() if w is None]
        assert not closed, f"{len(closed)} of 500 connections closed without an answer"
        assert len(got) == 500, f"only {len(got)} of 500 connections answered within 15 s"
        for fd, w in got.items():
            r = parse(w)
            assert r.id == want[fd], f"reply ID {r.id}, expected {want[fd]}"
            assert [x.to_text() for x in r.answer] == GOOD_ANSWER
    finally:
        for c in socks:
            c.close()
    healthy(s)


def test_tcp_max_connections_50(svcmapd):
    """tcp-max-connections = 50 and 500 connections: 50 stay open and are served, the
    other 450 are closed at once; once they all close, a new connection is served."""
    s = svcmapd(config("tcp-max-connections = 50\ntcp-idle-timeout = 30"))
    socks = open_connections(s.port, 500)
    try:
        t_last = time.monotonic()
        sel = selectors.DefaultSelector()
        for c in socks:
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        closed = set()
        while time.monotonic() - t_last < 2.0 * SLOW and len(closed) < 450:
            for key, _ in sel.select(0.2):
                try:
                    data = key.fileobj.recv(1)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"unasked data on a connection: {data!r}"
                closed.add(key.fileobj)
                sel.unregister(key.fileobj)
        # a moment more, to see that no more than 450 are closed
        for key, _ in sel.select(0.3):
            closed.add(key.fileobj)
        sel.close()
        still = [c for c in socks if c not in closed]
        assert len(still) <= 50, f"{len(still)} connections open with tcp-max-connections = 50"
        assert len(still) == 50, (
            f"only {len(still)} connections kept (expected 50); {len(closed)} closed")
        # UDP is served meanwhile; every kept connection is served.
        check_answer(s.ask(GOOD, "A", timeout=1.0), GOOD_ANSWER)
        for i, c in enumerate(still):
            c.setblocking(True)
            c.settimeout(2.0 * SLOW)
            q = make_query(GOOD, "A", qid=0x3000 + i)
            c.sendall(frame(q.to_wire()))
            r = parse(tcp_read_msg(c))
            assert r.id == q.id and [x.to_text() for x in r.answer] == GOOD_ANSWER
    finally:
        for c in socks:
            c.close()
    # capacity comes back once the server has seen the closes
    deadline = time.monotonic() + 3.0 * SLOW
    while True:
        try:
            healthy(s, "after the 500 connections closed")
            break
        except (EOFError, ConnectionResetError, BrokenPipeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tcp_state(sock):
    """The kernel's TCP state of a socket (TCP_INFO tcpi_state): 1 ESTABLISHED,
    7 CLOSE, 8 CLOSE_WAIT."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def test_client_that_never_reads(svcmapd):
    """A client streams queries for big answers and never reads its replies.  Other
    clients get answers within 1 s throughout; the server stops reading the slow client
    (its sends stall) and closes it once its replies cannot be written for
    tcp-idle-timeout (2 s here)."""
    s = svcmapd(config("tcp-idle-timeout = 2"))
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(2.0)
    slow.connect(("127.0.0.1", s.port))
    slow.setblocking(False)
    chunk = b"".join(frame(make_query(svc("big100.test-2"), "A", qid=i).to_wire())
                     for i in range(200))
    pending = b""
    t0 = last_progress = time.monotonic()
    sent = 0
    stalled_at = closed_at = None
    probes = 0
    worst = 0.0
    next_probe = t0
    try:
        while time.monotonic() - t0 < 25.0:
            now = time.monotonic()
            if closed_at is None:
                try:
                    if not pending:
                        pending = chunk
                    n = slow.send(pending)
                    pending = pending[n:]
                    sent += n
                    last_progress = now
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    closed_at = now
                if closed_at is None and tcp_state(slow) in (7, 8):
                    closed_at = now
            if stalled_at is None and now - last_progress > 0.5:
                stalled_at = last_progress
            if now >= next_probe:
                for tcp in (False, True):
                    t1 = time.monotonic()
                    r = s.ask(GOOD, "A", tcp=tcp, timeout=1.0)
                    took = time.monotonic() - t1
                    worst = max(worst, took)
                    check_answer(r, GOOD_ANSWER)
                    assert took <= 1.0 * SLOW, (
                        f"{'TCP' if tcp else 'UDP'} client waited {took:.2f}s for an answer "
                        f"while a client does not read ({sent} bytes of queries sent)")
                probes += 1
                next_probe = now + 0.2
            if closed_at is not None and now - closed_at > 1.0:
                break
            time.sleep(0.005)
    finally:
        slow.close()
    assert probes >= 5, f"only {probes} probes"
    assert stalled_at is not None or closed_at is not None, (
        f"the server kept reading a client that never reads ({sent} bytes of queries sent "
        f"in 25 s)")
    assert closed_at is not None, (
        f"the client that never reads was not closed within 25 s (its sends stalled "
        f"{time.monotonic() - stalled_at:.1f}s before the end; tcp-idle-timeout = 2)")
    if stalled_at is not None:
        assert closed_at - stalled_at <= 2.0 + 5.0, (
            f"closed {closed_at - stalled_at:.1f}s after its sends stalled "
            f"(tcp-idle-timeout = 2)")
    healthy(s)


# --------------------------------------------------------------------------- amplification


@pytest.mark.parametrize("qname", [".", "example.com.", "cluster.local.example.com.",
                                   "1.0.0.127.in-addr.arpa.",
                                   pytest.param(long_name(255, "example."), id="long-255")])
@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("edns", [None, 0])
def test_out_of_zone_refused_no_amplification(std, qname, tcp, edns):
    """REFUSED, no records, and the reply no larger than the query."""
    for rdtype in ("A", "ANY", "NS", "TXT"):
        r = std.ask(qname, rdtype, tcp=tcp, edns=edns, rd=True)
        check_refused(r)
        assert len(r.wire) <= len(r.query_wire), (
            f"{qname} {rdtype}: {len(r.wire)}-byte REFUSED to a {len(r.query_wire)}-byte query")


ANY_NAMES = {
    svc("ldap.test-2"): {"A", "AAAA"},
    svc("pg.test-2"): {"A", "SRV"},
    svc("dual.test-2"): {"A", "AAAA", "SRV"},
    svc("mysql.test-2"): {"A"},
    svc("mysql.test-1"): {"CNAME"},
    "cluster.local.": {"SOA", "NS"},
    svc("big60.test-2"): {"A"},
}


@pytest.mark.parametrize("qname", sorted(ANY_NAMES))
@pytest.mark.parametrize("tcp", [False, True])
def test_any_gets_one_rrset(std, qname, tcp):
    """RFC 8482: ANY is answered with one RRset of the name, never all of them."""
    r = std.ask(qname, "ANY", tcp=tcp, edns=0, payload=4096)
    check_header(r, "NOERROR", tc=bool(flagbits(r) & TC))
    if flagbits(r) & TC:
        r = std.ask(qname, "ANY", tcp=True, edns=0)
    sets = {(rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype))
            for rrset in r.answer}
    assert len(sets) == 1, f"ANY {qname}: expected one RRset, got {sorted(sets)}"
    (owner, rdtype), = sets
    assert owner == qname.lower() and rdtype in ANY_NAMES[qname], (owner, rdtype)


SIZE_QUERIES = [(svc(n), t) for n in ("mysql.test-2", "redis.test-2", "pg.test-2", "ldap.test-2",
                                      "web.test-2", "dual.test-2", "dnsd.test-2", "mid.test-2",
                                      "big60.test-2", "big100.test-2", "alias.test-1",
                                      "c0.test-1", "mysql.test-1", "nothing.test-2")
                for t in ("A", "AAAA", "SRV", "ANY", "TXT")] + [
    ("cluster.local.", "SOA"), ("cluster.local.", "NS"), ("cluster.local.", "ANY"),
    (svc("_pg._tcp.pg.test-2"), "SRV"), (svc("_dns._udp.dnsd.test-2"), "SRV"),
    ("21.1.168.192.in-addr.arpa.", "PTR"), ("dns-version.cluster.local.", "TXT")]


@pytest.mark.parametrize("payload", [None, 0, 100, 512, 600, 1000, 1232, 1400, 4096, 65535])
def test_udp_reply_never_exceeds_limit(std, payload):
    """No UDP reply is bigger than 512 bytes without EDNS, or than the client's EDNS size
    (below 512 counts as 512) capped at udp-max-size (1232 by default); one that does not
    fit has TC=1 and as many whole answer records as fit (SPEC 3)."""
    limit = 512 if payload is None else min(max(payload, 512), 1232)
    for qname, rdtype in SIZE_QUERIES:
        r = std.ask(qname, rdtype, edns=None if payload is None else 0,
                    payload=payload or 0)
        assert len(r.wire) <= limit, (
            f"{qname} {rdtype} with EDNS size {payload}: {len(r.wire)}-byte UDP reply, "
            f"limit {limit}")
        if flagbits(r) & TC:
            check_truncated(r, std.ask(qname, rdtype, tcp=True))
        if payload is not None:
            assert r.edns == 0 and r.payload == 1232, (
                f"our OPT must announce udp-max-size 1232, got {r.payload}")


def test_udp_max_size_4096(svcmapd):
    """udp-max-size = 4096: a 3.3 KB answer fits a client's 4096 without TC; a 4.9 KB one
    does not (TC, then in full over TCP); a client size of 600 gets <= 600 bytes or TC."""
    s = svcmapd(config("udp-max-size = 4096"))
    big200 = svc("big200.test-2")
    r = s.ask(big200, "A", edns=0, payload=4096)
    check_answer(r, [f"{big200} 5 IN A 10.200.{i // 250}.{i % 250 + 1}" for i in range(200)])
    assert 1232 < len(r.wire) <= 4096 and r.payload == 4096
    big300 = svc("big300.test-2")
    r = s.ask(big300, "A", edns=0, payload=4096)
    full = s.ask(big300, "A", edns=0, payload=4096, tcp=True)
    check_truncated(r, full)
    assert len(r.wire) <= 4096 and len(r.answer[0]) == (4096 - len(r.query_wire)) // 16
    assert len(full.answer[0]) == 300
    for qname in (big200, svc("big100.test-2"), svc("mid.test-2"), GOOD):
        r = s.ask(qname, "A", edns=0, payload=600)
        assert len(r.wire) <= 600, f"{qname}: {len(r.wire)} bytes for a client size of 600"
        if flagbits(r) & TC:
            check_truncated(r, s.ask(qname, "A", tcp=True))
    assert len(s.ask(svc("mid.test-2"), "A", edns=0, payload=600).answer) == 1
    r = s.ask(big200, "A")                       # no EDNS: 512
    check_truncated(r, s.ask(big200, "A", tcp=True))
    assert len(r.wire) <= 512
    healthy(s)
