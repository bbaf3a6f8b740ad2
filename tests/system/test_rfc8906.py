"""test_rfc8906.py -- RFC 8906 section 8 (testing a server's EDNS behaviour with dig),
one test id per check, against the shared server; the EDNS checks are repeated with
dnspython on the raw reply.

The query is the zone's SOA, as in the RFC.  What every check expects comes from the
README ("Answers", "Transport"): AA, RA never set, OPT iff the query had one, version
0, only DO echoed, unknown options ignored, BADVERS for a version above 0, NOTIMP for
an unknown opcode, COOKIEs answered with a 16-byte server cookie, a malformed COOKIE
is FORMERR.
"""

import re
import struct

import dns.rcode
import pytest

from conftest import (SLOW, ZONE, flagbits, make_query, parse, run_tool, tcp_exchange,
                      udp_exchange)

ZONE_NAME = ZONE.rstrip(".")


class Dig:
    """What dig printed for one reply: status, opcode, header flags, section counts,
    EDNS (None without an OPT), the OPT's option lines, and the ANSWER section."""

    def __init__(self, out):
        self.text = out
        m = re.search(r"->>HEADER<<- opcode: (\S+), status: (\S+), id: \d+", out)
        assert m, f"dig printed no reply header:\n{out}"
        self.opcode, self.status = m.group(1), m.group(2)
        m = re.search(r";; flags:([^;]*); QUERY: (\d+), ANSWER: (\d+), AUTHORITY: (\d+), "
                      r"ADDITIONAL: (\d+)", out)
        assert m, f"dig printed no flags line:\n{out}"
        self.flags = set(m.group(1).split())
        self.counts = dict(zip(("query", "answer", "authority", "additional"),
                               map(int, m.groups()[1:])))
        self.edns = None
        self.options = []
        m = re.search(r"^; EDNS: version: (\d+), flags:([^;]*);(?: MBZ: (0x[0-9a-fA-F]+),)? "
                      r"udp: (\d+)$", out, re.M)
        if m:
            self.edns = {"version": int(m.group(1)), "flags": set(m.group(2).split()),
                         "mbz": m.group(3), "udp": int(m.group(4))}
            tail = out[m.end():].splitlines()[1:]
            for line in tail:
                if not line.startswith("; ") or line.startswith(";; "):
                    break
                self.options.append(line[2:])
        assert ("OPT PSEUDOSECTION" in out) == (self.edns is not None), (
            f"dig's OPT section not understood:\n{out}")
        self.answer = []
        m = re.search(r"^;; ANSWER SECTION:\n(.*?)(?:\n\n|\Z)", out, re.M | re.S)
        if m:
            self.answer = [line.split(None, 4) for line in m.group(1).splitlines()]

    def option(self, name):
        """The option lines of that name (COOKIE, NSID, CLIENT-SUBNET, EXPIRE, OPT=100)."""
        return [o for o in self.options if o.split(":")[0] == name or o.startswith(name + " ")]


def dig(port, *args, qname=ZONE_NAME, qtype="SOA"):
    argv = ["dig", "@127.0.0.1", "-p", str(port), f"+time={int(2 * SLOW)}", "+tries=1",
            "+nosearch", *args, qname, qtype]
    status, out = run_tool(argv, timeout=15 * SLOW)
    assert status == 0, f"{' '.join(argv)}: exit {status}\n{out}"
    return Dig(out)


def soa_answer(d):
    assert d.counts["answer"] == 1 and len(d.answer) == 1, f"expected the SOA alone:\n{d.text}"
    owner, _ttl, rdclass, rdtype, rdata = d.answer[0]
    assert (owner.lower(), rdclass, rdtype) == (ZONE.lower(), "IN", "SOA"), d.answer[0]
    assert rdata.split()[:2] == [f"ns.dns.{ZONE}", f"hostmaster.{ZONE}"], rdata


def expect(d, status="NOERROR", *, aa=True, edns=True, soa=True, opcode="QUERY"):
    """The common shape: status, opcode, qr, aa as given, never ra; an OPT of version 0
    iff edns, announcing 1232, without unknown flags; the SOA in ANSWER iff soa."""
    assert d.status == status, f"status: expected {status}, got {d.status}\n{d.text}"
    assert d.opcode == opcode, f"opcode: expected {opcode}, got {d.opcode}"
    assert "qr" in d.flags, d.flags
    assert ("aa" in d.flags) == aa, f"aa: expected {aa}, flags {sorted(d.flags)}"
    assert "ra" not in d.flags, f"RA set: {sorted(d.flags)}"
    assert d.counts["query"] == 1, f"question not echoed: {d.counts}"
    if edns:
        assert d.edns is not None, f"no OPT in the reply:\n{d.text}"
        assert d.edns["version"] == 0, f"OPT version {d.edns['version']}"
        assert d.edns["mbz"] is None, f"unknown EDNS flags echoed: MBZ {d.edns['mbz']}"
        assert d.edns["flags"] <= {"do"}, f"EDNS flags {d.edns['flags']}"
        assert d.edns["udp"] == 1232, f"OPT announces {d.edns['udp']}, expected 1232"
    else:
        assert d.edns is None, f"OPT in a reply to a query without one:\n{d.text}"
    if soa:
        soa_answer(d)
    else:
        assert d.counts["answer"] == 0 and d.counts["authority"] == 0, d.text


def no_options(d):
    assert d.options == [], f"options echoed: {d.options}"


def cookie_of(d):
    lines = d.option("COOKIE")
    assert len(lines) == 1, f"expected one COOKIE in the reply, got {lines}\n{d.text}"
    m = re.fullmatch(r"COOKIE: ([0-9a-f]+)(?: \((good|bad)\))?", lines[0])
    assert m, lines[0]
    return m.group(1), m.group(2)


CLIENT = "0102030405060708"


def check_plain(d):
    expect(d, edns=False)


def check_edns0(d):
    expect(d)
    no_options(d)


def check_unknown_flag(d):
    expect(d)
    assert d.edns["flags"] == set(), f"EDNS flags echoed: {d.edns['flags']}"
    no_options(d)


def check_unknown_flag_do(d):
    expect(d)
    assert d.edns["flags"] == {"do"}, f"EDNS flags: expected do only, got {d.edns['flags']}"


def check_badvers(d):
    expect(d, "BADVERS", aa=False, soa=False)
    no_options(d)


def check_notimp_plain(d):
    expect(d, "NOTIMP", aa=False, edns=False, soa=False, opcode="RESERVED15")


def check_notimp_edns(d):
    expect(d, "NOTIMP", aa=False, soa=False, opcode="RESERVED15")
    no_options(d)


def check_do(d):
    expect(d)
    assert d.edns["flags"] == {"do"}, f"DO not echoed: EDNS flags {d.edns['flags']}"


def check_cookie(d):
    expect(d)
    value, verdict = cookie_of(d)
    assert len(value) == 2 * (8 + 16), f"client + 16-byte server cookie expected, got {value}"
    assert verdict == "good", f"dig says the cookie is {verdict}"
    assert d.options == [f"COOKIE: {value} (good)"], d.options


def check_cookie_given(d):
    check_cookie(d)
    value, _ = cookie_of(d)
    assert value.startswith(CLIENT), f"client cookie not echoed: {value}"
    assert value[16:18] == "01", f"server cookie version {value[16:18]}, RFC 9018 says 1"


def check_bad_cookie(d):
    expect(d, "FORMERR", aa=False, soa=False)
    assert d.option("COOKIE") == [], f"COOKIE in the FORMERR: {d.options}"


def check_ignored_option(name):
    def check(d):
        expect(d)
        assert d.option(name) == [], f"{name} echoed: {d.options}"
        no_options(d)
    return check


def check_norec(d):
    expect(d, edns=False)
    assert "rd" not in d.flags


def check_rec(d):
    expect(d, edns=False)
    assert "rd" in d.flags, "RD not copied"


def check_bufsize(d):
    expect(d)
    no_options(d)


CHECKS = {
    # RFC 8906 8.2.1 .. 8.2.12, in its order, plus the variants the README promises
    "plain": (["+norec", "+noedns"], check_plain),
    "edns0": (["+norec", "+edns=0", "+nocookie"], check_edns0),
    "edns0-unknown-option": (["+norec", "+edns=0", "+nocookie", "+ednsopt=100"], check_edns0),
    "edns0-unknown-flag": (["+norec", "+edns=0", "+nocookie", "+ednsflags=0x40"],
                           check_unknown_flag),
    "edns0-unknown-flag-0x80": (["+norec", "+edns=0", "+nocookie", "+ednsflags=0x80"],
                                check_unknown_flag),
    "edns0-unknown-flag-with-do": (["+norec", "+edns=0", "+nocookie", "+dnssec",
                                    "+ednsflags=0x40"], check_unknown_flag_do),
    "edns1": (["+norec", "+edns=1", "+noednsneg", "+nocookie"], check_badvers),
    "edns1-unknown-option": (["+norec", "+edns=1", "+noednsneg", "+nocookie", "+ednsopt=100"],
                             check_badvers),
    "edns1-unknown-flag-and-option": (["+norec", "+edns=1", "+noednsneg", "+nocookie",
                                       "+ednsflags=0x80", "+ednsopt=100"], check_badvers),
    "unknown-opcode": (["+norec", "+noedns", "+opcode=15"], check_notimp_plain),
    "unknown-opcode-edns": (["+norec", "+edns=0", "+nocookie", "+opcode=15"], check_notimp_edns),
    "dnssec-do": (["+norec", "+dnssec", "+nocookie"], check_do),
    "tcp": (["+norec", "+noedns", "+tcp"], check_plain),
    "tcp-edns": (["+norec", "+edns=0", "+nocookie", "+tcp"], check_edns0),
    "tcp-dnssec-do": (["+norec", "+dnssec", "+nocookie", "+tcp"], check_do),
    "cookie": (["+norec", "+cookie"], check_cookie),
    "cookie-client-given": (["+norec", f"+cookie={CLIENT}"], check_cookie_given),
    "cookie-tcp": (["+norec", "+cookie", "+tcp"], check_cookie),
    "cookie-malformed-7-bytes": (["+norec", "+cookie=01020304050607"], check_bad_cookie),
    "cookie-malformed-9-bytes": (["+norec", "+cookie=" + "ab" * 9], check_bad_cookie),
    "nsid": (["+norec", "+nocookie", "+nsid"], check_ignored_option("NSID")),
    "expire": (["+norec", "+nocookie", "+expire"], check_ignored_option("EXPIRE")),
    "subnet": (["+norec", "+nocookie", "+subnet=192.0.2.0/24"],
               check_ignored_option("CLIENT-SUBNET")),
    "subnet-v6": (["+norec", "+nocookie", "+subnet=2001:db8::/56"],
                  check_ignored_option("CLIENT-SUBNET")),
    "norec": (["+norec", "+noedns"], check_norec),
    "rec": (["+rec", "+noedns"], check_rec),
    "rec-edns": (["+rec", "+edns=0", "+nocookie"], check_edns0),
    "bufsize-512-udp": (["+norec", "+nocookie", "+bufsize=512"], check_bufsize),
    "bufsize-512-tcp": (["+norec", "+nocookie", "+bufsize=512", "+tcp"], check_bufsize),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_dig(std, check):
    args, verify = CHECKS[check]
    verify(dig(std.port, *args))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dig_server_cookie_sent_back(std, tcp):
    """RFC 7873 5.3: a client sends the server cookie it got back; it is accepted (NOERROR,
    the SOA) and answered with the client cookie and a server cookie again."""
    proto = ["+tcp"] if tcp else []
    first, _ = cookie_of(dig(std.port, "+norec", f"+cookie={CLIENT}", *proto))
    assert first.startswith(CLIENT) and len(first) == 48
    d = dig(std.port, "+norec", f"+cookie={first}", *proto)
    check_cookie_given(d)
    second, verdict = cookie_of(d)
    assert verdict == "good"
    assert second[:16] == CLIENT


def test_dig_not_recursive_out_of_zone(std):
    """+rec for a name outside the zone: REFUSED, RA clear (never a recursive answer)."""
    d = dig(std.port, "+rec", "+noedns", qname="example.com", qtype="A")
    assert d.status == "REFUSED", d.text
    assert "ra" not in d.flags and "aa" not in d.flags, d.flags
    assert d.counts["answer"] == 0


# --------------------------------------------------------------------------- dnspython


def raw_opt(version=0, flags=0, options=b"", size=1232):
    return b"\0" + struct.pack("!HHBBHH", 41, size, 0, version, flags, len(options)) + options


def soa_query(qid, *, opt=None, opcode=0, rd=False):
    q = make_query(ZONE, "SOA", qid=qid)
    w = bytearray(q.to_wire())
    w[2] = (w[2] & 0x87) | (opcode << 3) | (0x01 if rd else 0)
    if opt is not None:
        w[10:12] = struct.pack("!H", 1)
        w += opt
    return bytes(w)


OPTION_100 = struct.pack("!HH", 100, 4) + b"\xde\xad\xbe\xef"
RAW = {
    # name: (query wire, rcode, opcode, OPT expected, EDNS flags expected, answer count)
    "plain": (soa_query(0x101), "NOERROR", 0, False, 0, 1),
    "edns0": (soa_query(0x102, opt=raw_opt()), "NOERROR", 0, True, 0, 1),
    "unknown-option": (soa_query(0x103, opt=raw_opt(options=OPTION_100)), "NOERROR", 0, True, 0,
                       1),
    "unknown-flag": (soa_query(0x104, opt=raw_opt(flags=0x4000)), "NOERROR", 0, True, 0, 1),
    "all-flags": (soa_query(0x105, opt=raw_opt(flags=0xffff)), "NOERROR", 0, True, 0x8000, 1),
    "do": (soa_query(0x106, opt=raw_opt(flags=0x8000)), "NOERROR", 0, True, 0x8000, 1),
    "edns1": (soa_query(0x107, opt=raw_opt(version=1)), "BADVERS", 0, True, 0, 0),
    "edns255-option-flag": (soa_query(0x108, opt=raw_opt(version=255, flags=0x4000,
                                                         options=OPTION_100)),
                            "BADVERS", 0, True, 0, 0),
    "opcode15": (soa_query(0x109, opcode=15), "NOTIMP", 15, False, 0, 0),
    "opcode15-edns": (soa_query(0x10a, opcode=15, opt=raw_opt()), "NOTIMP", 15, True, 0, 0),
    "opcode15-edns1": (soa_query(0x10b, opcode=15, opt=raw_opt(version=1)), "NOTIMP", 15, True,
                       0, 0),
    "bad-cookie": (soa_query(0x10c, opt=raw_opt(options=struct.pack("!HH", 10, 7) + b"1234567")),
                   "FORMERR", 0, True, 0, 0),
}


@pytest.mark.parametrize("name", list(RAW))
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_raw_edns(std, name, tcp):
    """The same checks on the wire: exact EDNS flags, no options, version 0, rcode incl.
    the extended bits, RA clear, opcode and ID copied."""
    wire, rcode, opcode, has_opt, ednsflags, nanswer = RAW[name]
    reply = tcp_exchange(wire, std.port) if tcp else udp_exchange(wire, std.port)
    assert reply is not None, f"no reply to {name}"
    assert (reply[2] >> 3) & 0xf == opcode, f"opcode {(reply[2] >> 3) & 0xf}, expected {opcode}"
    r = parse(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])  # dnspython knows no opcode 15
    assert r.id == struct.unpack("!H", wire[:2])[0]
    assert dns.rcode.to_text(r.rcode()) == rcode, (
        f"{name}: expected {rcode}, got {dns.rcode.to_text(r.rcode())}")
    assert not flagbits(r) & 0x0080, "RA set"
    assert (r.edns >= 0) == has_opt, f"{name}: OPT {'missing' if has_opt else 'unexpected'}"
    if has_opt:
        assert r.edns == 0, f"OPT version {r.edns}"
        assert r.ednsflags & 0xffff == ednsflags, (
            f"{name}: EDNS flags {r.ednsflags & 0xffff:#06x}, expected {ednsflags:#06x}")
        assert list(r.options) == [], f"{name}: options echoed: {r.options}"
        assert r.payload == 1232
    assert len(r.answer) == nanswer, r.to_text()
    if nanswer == 0:
        assert r.authority == [], r.to_text()
