"""test_protocol.py -- SPEC 2.1 rows for out-of-zone, AXFR/IXFR, FORMERR, NOTIMP, BADVERS;
SPEC 3: EDNS0 and the UDP size limits with TC=1 then the full answer over TCP."""

import shutil
import socket
import struct
import subprocess

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from conftest import (AA, QR, RD, ZONE, addresses, check_answer, check_header,
                      check_nxdomain, check_refused, flagbits, in_private_netns, make_query, parse,
                      rrlines, svc, tcp_connect, tcp_exchange, udp_exchange)


def exchange(std, wire, tcp=False, timeout=1.0):
    if tcp:
        return tcp_exchange(wire, std.port)
    return udp_exchange(wire, std.port, timeout=timeout)


# ---------------------------------------------------------------- out of zone


@pytest.mark.parametrize("qname,rdtype", [
    (".", "NS"),                            # CoreDNS forward's health probe
    (".", "SOA"),
    ("example.com.", "A"),
    ("local.", "SOA"),                      # the zone's parent
    ("notcluster.local.", "A"),             # shares the suffix text, not the label
    ("cluster.local.example.com.", "A"),
    ("svc.cluster.local.invalid.", "A"),
])
@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("edns", [None, 0])
def test_out_of_zone_refused(std, qname, rdtype, tcp, edns):
    r = std.ask(qname, rdtype, tcp=tcp, rd=True, edns=edns)
    check_refused(r)


def test_refused_rd_clear(std):
    check_refused(std.ask("example.com.", "A", rd=False))


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR", "IXFR+SOA"])
@pytest.mark.parametrize("tcp", [False, True])
def test_zone_transfer_refused(std, rdtype, tcp):
    q = make_query(ZONE, rdtype.split("+")[0])
    if rdtype == "IXFR+SOA":   # RFC 1995 4: a real IXFR query has the client's SOA in AUTHORITY
        soa = dns.rrset.from_text(ZONE, 5, "IN", "SOA",
                                  f"ns.dns.{ZONE} hostmaster.{ZONE} 1 7200 1800 86400 5")
        q.authority.append(soa)
    wire = q.to_wire()
    r = parse(exchange(std, wire, tcp))
    assert r.id == q.id and flagbits(r) & QR
    assert dns.rcode.to_text(r.rcode()) == "REFUSED", f"{rdtype}: got {dns.rcode.to_text(r.rcode())}"
    assert r.answer == [] and r.authority == [], f"{rdtype} leaked records: {r.to_text()}"


@pytest.mark.parametrize("qname,rdtype", [(ZONE, "SOA"), (svc("mysql.test-2"), "A"),
                                          ("version.bind.", "TXT"), ("id.server.", "TXT")])
@pytest.mark.parametrize("qclass", ["CH", "HS"])
def test_non_in_class_refused(std, qname, rdtype, qclass):
    r = std.ask(qname, rdtype, qclass=qclass)
    check_refused(r)


# ---------------------------------------------------------------- malformed and odd headers


def header(qid, flags, qd=0, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def qsec(name="mysql.test-2.svc.cluster.local.", rdtype=1, rdclass=1):
    wire = b""
    for label in name.rstrip(".").split("."):
        wire += bytes([len(label)]) + label.encode()
    return wire + b"\0" + struct.pack("!HH", rdtype, rdclass)


def expect_formerr(std, wire, tcp):
    reply = exchange(std, wire, tcp)
    assert reply is not None, "no reply to a message whose header is readable (expected FORMERR)"
    r = parse(reply)
    assert r.id == struct.unpack("!H", wire[:2])[0], "ID not copied"
    assert flagbits(r) & QR, "QR not set"
    assert dns.rcode.to_text(r.rcode()) == "FORMERR", f"expected FORMERR, got {dns.rcode.to_text(r.rcode())}"
    assert r.answer == [] and r.authority == [], r.to_text()
    return r


@pytest.mark.parametrize("tcp", [False, True])
def test_qdcount_zero_formerr(std, tcp):
    expect_formerr(std, header(0x4242, RD), tcp)


@pytest.mark.parametrize("tcp", [False, True])
def test_qdcount_two_formerr(std, tcp):
    wire = header(0x4243, 0, qd=2) + qsec() + qsec("redis.test-2.svc.cluster.local.")
    expect_formerr(std, wire, tcp)


@pytest.mark.parametrize("body", [
    b"\x05mysql\x06test",                          # name runs off the end
    qsec()[:-3],                                   # type/class cut short
    b"\xc0\x0c\x00\x01\x00\x01",                   # compression pointer to itself
    b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label type 0x40 (obsolete extended label)
])
@pytest.mark.parametrize("tcp", [False, True])
def test_malformed_question_formerr(std, body, tcp):
    expect_formerr(std, header(0x4244, 0, qd=1) + body, tcp)


def test_two_opt_records_formerr(std):
    """RFC 6891 6.1.1: more than one OPT RR -> FORMERR."""
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    expect_formerr(std, header(0x4245, 0, qd=1, ar=2) + qsec() + opt + opt, False)


def test_short_packet_dropped(std):
    """Fewer than 12 bytes: no header to answer with -> silence; the server keeps serving."""
    assert udp_exchange(b"\x12\x34\x01", std.port, timeout=0.3) is None
    check_answer(std.ask(svc("mysql.test-2"), "A"), [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])


@pytest.mark.parametrize("tcp", [False, True])
def test_response_not_answered(std, tcp):
    """A message with QR=1 is never answered (no reflection loops)."""
    wire = header(0x5151, QR | AA, qd=1) + qsec()
    if tcp:
        with tcp_connect(std.port) as s:
            s.settimeout(0.5)
            s.sendall(struct.pack("!H", len(wire)) + wire)
            try:
                data = s.recv(2)
            except (socket.timeout, ConnectionResetError):
                data = None
            assert not data, f"server answered a response over TCP: {data!r}"
    else:
        assert udp_exchange(wire, std.port, timeout=0.5) is None, "server answered a response"
    check_answer(std.ask(svc("mysql.test-2"), "A"), [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])


@pytest.mark.parametrize("opcode", ["IQUERY", "STATUS", "NOTIFY", "UPDATE"])
@pytest.mark.parametrize("tcp", [False, True])
def test_other_opcode_notimp(std, opcode, tcp):
    q = make_query(ZONE, "SOA")
    q.set_opcode(dns.opcode.from_text(opcode))
    wire = q.to_wire()
    reply = exchange(std, wire, tcp)
    assert reply is not None, f"no reply to opcode {opcode}"
    r = parse(reply)
    assert r.id == q.id and flagbits(r) & QR
    assert dns.rcode.to_text(r.rcode()) == "NOTIMP", f"{opcode}: got {dns.rcode.to_text(r.rcode())}"
    assert r.opcode() == q.opcode(), "opcode not copied"
    assert r.answer == [] and r.authority == []


# ---------------------------------------------------------------- EDNS


@pytest.mark.parametrize("do", [False, True])
@pytest.mark.parametrize("tcp", [False, True])
def test_edns_opt_and_do_echoed(std, do, tcp):
    """OPT in the reply iff the query had one; DO copied (check_header)."""
    r = std.ask(svc("mysql.test-2"), "A", edns=0, do=do, tcp=tcp)
    check_answer(r, [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])
    r = std.ask(svc("nothing.test-2"), "A", edns=0, do=do, tcp=tcp)
    check_nxdomain(r, serial=std.soa_serial)


def test_no_edns_no_opt(std):
    r = std.ask(svc("mysql.test-2"), "A")
    check_header(r, "NOERROR")
    assert r.edns == -1


def test_unknown_edns_option_ignored(std):
    opt = dns.edns.GenericOption(65001, b"\x01\x02\x03")
    r = std.ask(svc("mysql.test-2"), "A", edns=0, options=[opt])
    check_answer(r, [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])


@pytest.mark.parametrize("tcp", [False, True])
def test_edns_version_1_badvers(std, tcp):
    q = make_query(svc("mysql.test-2"), "A", edns=1)
    wire = q.to_wire()
    r = parse(exchange(std, wire, tcp))
    assert r.id == q.id and flagbits(r) & QR
    assert r.rcode() == dns.rcode.BADVERS, f"expected BADVERS (16), got {dns.rcode.to_text(r.rcode())}"
    assert r.edns == 0, f"BADVERS must carry an OPT of version 0, got version {r.edns}"
    assert r.answer == [] and r.authority == [], r.to_text()


# ---------------------------------------------------------------- UDP size and TC


BIG60 = svc("big60.test-2")       # 60 A records: about 1020 bytes with an OPT
BIG100 = svc("big100.test-2")     # 100 A records: about 1660 bytes
MID = svc("mid.test-2")           # 15 A records: about 300 bytes


def check_truncated(std, qname, limit, prefix, count, **kw):
    """SPEC 3: TC=1 with as many whole A records as fit in `limit` bytes, each a different
    one of the service's `count` addresses (prefix.1 ... prefix.count); nothing in
    AUTHORITY or ADDITIONAL. dnspython reads each record by its RDLENGTH, so a cut one
    would not parse."""
    r = std.ask(qname, "A", one_rr=True, **kw)
    check_header(r, "NOERROR", tc=True)
    assert r.authority == [] and r.additional == [], rrlines(r.authority + r.additional)
    assert all(rrset.rdtype == dns.rdatatype.A and rrset.name == r.question[0].name
               and rrset.ttl == 5 for rrset in r.answer), rrlines(r.answer)
    got = [rrset[0].address for rrset in r.answer]
    assert len(set(got)) == len(got), f"an address twice: {sorted(got)}"
    assert set(got) <= {f"{prefix}.{i}" for i in range(1, count + 1)}, sorted(got)
    fit = (limit - len(r.query_wire)) // 16   # header, question and OPT as in the query
    assert len(got) == fit, f"{len(got)} A records in a TC reply, {fit} fit in {limit} bytes"
    assert len(r.wire) <= limit < len(r.wire) + 16, len(r.wire)
    return r


def test_tc_without_edns_then_full_over_tcp(std):
    """512 bytes without EDNS: 60 records do not fit -> TC=1 with the 29 that fit (a
    shuffled subset: resolvers without TCP, musl before 1.2.4, still get addresses),
    then all 60 over TCP."""
    seen = set()
    for _ in range(5):
        r = check_truncated(std, BIG60, 512, "10.60.0", 60)
        seen |= {rrset[0].address for rrset in r.answer}
    assert len(seen) > 29, f"always the same {len(seen)} of 60 addresses: not shuffled"
    r = std.ask(BIG60, "A", tcp=True)
    check_answer(r, [f"{BIG60} 5 IN A 10.60.0.{i}" for i in range(1, 61)])
    assert len(r.wire) > 512


def test_fits_512_without_edns(std):
    r = std.ask(MID, "A")
    check_answer(r, [f"{MID} 5 IN A 10.15.0.{i}" for i in range(1, 16)])
    assert len(r.wire) <= 512


@pytest.mark.parametrize("payload", [1232, 4096, 65535])
def test_edns_large_enough(std, payload):
    r = std.ask(BIG60, "A", edns=0, payload=payload)
    check_answer(r, [f"{BIG60} 5 IN A 10.60.0.{i}" for i in range(1, 61)])
    assert 512 < len(r.wire) <= 1232


@pytest.mark.parametrize("payload", [512, 1000])
def test_edns_small_size_tc(std, payload):
    check_truncated(std, BIG60, payload, "10.60.0", 60, edns=0, payload=payload)


@pytest.mark.parametrize("payload", [1232, 4096, 65535])
def test_edns_size_capped_at_1232(std, payload):
    """The client may advertise 4096; replies over UDP never exceed 1232."""
    check_truncated(std, BIG100, 1232, "10.100.0", 100, edns=0, payload=payload)
    r = std.ask(BIG100, "A", tcp=True, edns=0, payload=payload)
    check_answer(r, [f"{BIG100} 5 IN A 10.100.0.{i}" for i in range(1, 101)])


@pytest.mark.parametrize("payload", [0, 100, 511])
def test_edns_size_below_512_counts_as_512(std, payload):
    """A ~300-byte answer fits 512, so an advertised size below 512 does not truncate it."""
    r = std.ask(MID, "A", edns=0, payload=payload)
    check_answer(r, [f"{MID} 5 IN A 10.15.0.{i}" for i in range(1, 16)])
    assert len(r.wire) <= 512


def test_tc_keeps_question_case_and_do(std):
    q = "BIG60.Test-2.SVC.cluster.local."
    r = check_truncated(std, q, 512, "10.60.0", 60, edns=0, payload=512, do=True)
    assert r.question[0].name.to_text() == q
    assert all(rrset.name.to_text() == q for rrset in r.answer), rrlines(r.answer)


def test_tc_cname_first(svcmapd):
    """A CNAME to a big service: the TC reply keeps the CNAME first, then as many of the
    target's records as fit (SPEC 3)."""
    s = svcmapd("[server]\nlisten = 127.0.0.1:@PORT@\n[namespace a]\n"
                f"big = {addresses('10.7', 60)}\nalias = big.a.svc.cluster.local\n")
    r = s.ask(svc("alias.a"), "A")
    check_header(r, "NOERROR", tc=True)
    assert r.answer and r.answer[0].rdtype == dns.rdatatype.CNAME, rrlines(r.answer)
    assert r.answer[0].to_text() == f"{svc('alias.a')} 5 IN CNAME {svc('big.a')}"
    addrs = [rd.address for rrset in r.answer[1:] for rd in rrset]
    assert len(addrs) >= 10 and set(addrs) <= {f"10.7.0.{i}" for i in range(1, 61)}, addrs
    assert r.authority == [] and r.additional == [] and len(r.wire) <= 512
    r = s.ask(svc("alias.a"), "A", tcp=True)
    check_header(r, "NOERROR")
    assert sum(len(rrset) for rrset in r.answer) == 61


GAI_C = r"""
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *p;
    int e = argc == 2 ? getaddrinfo(argv[1], NULL, &hints, &res) : EAI_FAIL;
    if (e) {
        printf("error: %s\n", gai_strerror(e));
        return 2;
    }
    for (p = res; p; p = p->ai_next) {
        char text[64];
        inet_ntop(AF_INET, &((struct sockaddr_in *)p->ai_addr)->sin_addr, text, sizeof(text));
        printf("%s\n", text);
    }
    return 0;
}
"""


def test_musl_without_tcp_fallback_gets_addresses(svcmapd_bin, tmp_path):
    """Issue 12: musl before 1.2.4 (Alpine 3.17 and older) never retries a TC reply over
    TCP. Its getaddrinfo, asked for a service of 60 addresses in a private network
    namespace where svcmapd is the only nameserver, must now return addresses (the
    whole records of the TC reply) instead of failing."""
    musl_gcc = shutil.which("musl-gcc")
    if not musl_gcc:
        pytest.skip("musl-gcc (Debian's musl-tools) is not installed")
    (tmp_path / "gai.c").write_text(GAI_C)
    subprocess.run([musl_gcc, "-static", "-O1", "-o", str(tmp_path / "gai"),
                    str(tmp_path / "gai.c")], check=True, capture_output=True, timeout=60)
    config = ("[server]\nlisten = 127.0.0.1:53\n[upstream]\nservers = none\n"
              f"[namespace a]\nbig = {addresses('10.7', 60)}\n")
    r = in_private_netns(svcmapd_bin, tmp_path, config,
                         f"{tmp_path / 'gai'} big.a.svc.cluster.local")
    assert r.returncode == 0, f"musl's getaddrinfo failed: {r.stdout}{r.stderr}"
    got = r.stdout.split()
    assert 10 <= len(got) <= 60 and set(got) <= {f"10.7.0.{i}" for i in range(1, 61)}, got
