#!/usr/bin/python3
"""make_corpus.py -- writes the seed corpora of tests/fuzz/corpus/ (answer, config, upstream,
reload, import, http, control, handover).

Run it from anywhere with Debian's python3 (it needs python3-dnspython):

    /usr/bin/python3 tests/fuzz/make_corpus.py

It replaces the files it writes and leaves others alone. Seeds are small on
purpose: libFuzzer mutates from them, it does not need many.

answer/: `fuzz_answer` inputs, one byte for the transport (bit 0: TCP), one
for the peer address (0 none, 1 IPv4, 2 IPv6), then the DNS message. The
names are those of the fixed zone in fuzz_answer.c.

config/: the shipped conf/svcmapd.ini, every tests/data/bad/*.ini, and the
handcrafted files below.

upstream/: `fuzz_upstream` inputs, one byte of flags for the client's query
(bit 0: TCP, bit 1: AAAA, bit 2: EDNS), then an upstream's reply to the
lookup of mysql.test-1.example.com (its ID is replaced by the target);
the back-* seeds lead the chain back into the zone and claim records there.

reload/: `fuzz_reload` inputs, one byte of flags (bit 0: the new file is
read back through config_read(); bit 1: grown past its limit first), then
the running file, "\n===\n" and the new file: reloads that are applied,
held (most services gone, a torn copy), confirmed, or rejected (empty).

import/: `fuzz_import` inputs: every tests/data/import/*.json and bad/*.json,
and the small Lists below.

http/: `fuzz_http` inputs, what a client sends on one connection: requests
as probes, Prometheus and curl send them, pipelined ones, and the refused
kinds (a head over 8 KiB, a body, a bad request line, HTTP/2).

control/: `fuzz_control` inputs, what a client sends on the control socket:
each command as svcmapctl and socat send it, and the refused kinds (an
unknown word, an argument, binary, a line over 256 bytes, no newline).

handover/: `fuzz_handover` inputs, what a running svcmapd sends to
`svcmapd --replace` after its `replace`: offers with the health state of
the fixed mapping's probes in fuzz_handover.c, good and broken, and broken
offers (a refusal, a line too long, a socket without its descriptor).
"""

import os
import shutil
import struct
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import dns.reversename

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ZONE = "cluster.local."

UDP, TCP = 0, 1
NO_PEER, PEER4, PEER6 = 0, 1, 2


def svc(name, ns="test-2"):
    return f"{name}.{ns}.svc.{ZONE}"


def query(name, rdtype="A", edns=None, payload=1232, dnssec=False, options=None, qid=0x1234,
          rdclass="IN"):
    """A query as a stub resolver sends it; edns=0 adds an OPT, None sends none."""
    if edns is None:
        m = dns.message.make_query(name, rdtype, rdclass=rdclass, use_edns=False)
    else:
        m = dns.message.make_query(name, rdtype, rdclass=rdclass, use_edns=edns, payload=payload,
                                   want_dnssec=dnssec, options=options or [])
    m.id = qid
    return m.to_wire()


def cookie(client, server=b""):
    return dns.edns.GenericOption(10, client + server)


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!6H", qid, flags, qd, an, ns, ar)


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


# An empty TSIG record owned by the root: svcmapd never asks for one.
TSIG = b"\0" + struct.pack("!HHIH", 250, 255, 0, 0)


def hiding_cname(rdata_after_target):
    """A CNAME owned by the root whose target (the root) ends before its RDLENGTH
    does: libldns reads `rdata_after_target` as records of their own (wire.h)."""
    return (b"\0" + struct.pack("!HHIH", 5, 1, 0, 1 + len(rdata_after_target)) + b"\0"
            + rdata_after_target)


def with_additional(msg, records, n):
    """msg with `records`, n of them in wire form, appended to its additional
    section (the last one), and ARCOUNT raised by n."""
    arcount = struct.unpack("!H", msg[10:12])[0] + n
    return msg[:10] + struct.pack("!H", arcount) + msg[12:] + records


def opt(udp=1232, version=0, flags=0, rdata=b"", owner=b"\0"):
    return owner + struct.pack("!HHBBHH", 41, udp, 0, version, flags, len(rdata)) + rdata


QNAME = wire_name(svc("mysql"))
QUESTION = QNAME + struct.pack("!HH", 1, 1)


def answer_seeds():
    """(file name, transport, peer, message) for each seed."""
    s = []

    def add(name, msg, transport=UDP, peer=NO_PEER):
        s.append((name, transport, peer, msg))

    # Every answer shape of the fixed zone, as real clients ask.
    add("a-ipv4", query(svc("mysql")))
    add("a-ipv4-edns", query(svc("mysql"), edns=0))
    add("a-ipv4-edns-do-tcp", query(svc("mysql"), edns=0, dnssec=True), TCP)
    add("aaaa-ipv6", query(svc("v6"), "AAAA", edns=0))
    add("aaaa-mixed", query(svc("dual"), "AAAA"))
    add("a-several", query(svc("redis"), edns=0))
    add("a-0x20-case", query("MySQL.TEST-2.svc.Cluster.LOCAL.", edns=0))
    add("srv-port", query("_pg._tcp." + svc("pg"), "SRV", edns=0))
    add("srv-service-name", query(svc("pg"), "SRV"))
    add("srv-named-udp", query("_ldap._udp." + svc("ldap"), "SRV", edns=0, payload=4096))
    add("a-endpoint", query("10-0-0-5." + svc("ldap")))
    add("aaaa-endpoint", query("2001-db8--5." + svc("ldap"), "AAAA", edns=0))
    add("srv-big-udp-512", query(svc("farm"), "SRV"))
    add("srv-big-udp-4096", query(svc("farm"), "SRV", edns=0, payload=4096))
    add("srv-big-tcp", query(svc("farm"), "SRV"), TCP)
    add("a-big-udp", query(svc("farm")))
    add("srv-long-names", query("_a-long-service-name-that-pushes-names-toward-dns-limits-abcdef._tcp."
                                "a-long-service-name-that-pushes-names-toward-dns-limits-abcdef."
                                "a-long-namespace-name-that-pushes-names-toward-dns-limits-abcde.svc."
                                + ZONE, "SRV", edns=0))
    # health-checked services (SPEC §6): states from a hash of the input
    add("checked-a", query(svc("web", "test-3"), edns=0))
    add("checked-aaaa", query(svc("web", "test-3"), "AAAA"))
    add("checked-srv", query(svc("web", "test-3"), "SRV", edns=0))
    add("checked-failover-srv", query("_db._tcp." + svc("db", "test-3"), "SRV"), TCP)
    add("checked-failover-chain", query(svc("dbalias", "test-3"), edns=0))
    add("checked-big-udp-512", query(svc("pool", "test-3")))
    add("checked-any", query(svc("pool", "test-3"), "ANY"))
    add("cname-in-zone", query(svc("db"), "CNAME"))
    add("a-chained", query(svc("db"), edns=0))
    add("a-chained-twice", query(svc("chain"), edns=0), TCP)
    add("srv-via-cname", query(svc("srvalias"), "SRV", edns=0))
    add("a-outside-zone-target", query(svc("mysql", "test-1"), edns=0))
    add("aaaa-resolve-no", query(svc("web", "test-1"), "AAAA"))
    add("a-cname-to-outside", query(svc("outside"), edns=0))
    add("ptr-ipv4", query(dns.reversename.from_address("192.168.1.21").to_text(), "PTR"))
    add("ptr-ipv6", query(dns.reversename.from_address("2001:db8::5").to_text(), "PTR", edns=0))
    add("ptr-unknown", query(dns.reversename.from_address("192.168.9.9").to_text(), "PTR"))
    add("ptr-outside-reverse-zones", query(dns.reversename.from_address("10.0.0.5").to_text(),
                                           "PTR", edns=0))
    add("ptr-unknown-outside", query(dns.reversename.from_address("10.9.9.9").to_text(), "PTR"))
    add("soa-reverse-apex", query("168.192.in-addr.arpa.", "SOA", edns=0))
    add("ns-reverse-apex", query("8.b.d.0.1.0.0.2.ip6.arpa.", "NS"))
    add("ptr-reverse-ent", query("1.168.192.in-addr.arpa.", "PTR"))
    add("a-srv-ent", query("_tcp." + svc("pg"), edns=0))
    add("a-dns-ent", query("dns." + ZONE))
    add("any", query(svc("mysql"), "ANY", edns=0))
    add("soa-apex", query(ZONE, "SOA", edns=0))
    add("ns-apex", query(ZONE, "NS", edns=0))
    add("a-ns-dns", query("ns.dns." + ZONE))
    add("txt-dns-version", query("dns-version." + ZONE, "TXT"))
    add("a-nxdomain", query(svc("nope"), edns=0))
    add("mx-nodata", query(svc("mysql"), "MX"))
    add("ns-root-refused", query(".", "NS"))
    add("a-outside-refused", query("example.com."))
    add("axfr", query(ZONE, "AXFR"), TCP)
    # zone transfers (SPEC 8): the IPv4 peer is in [transfer] allow, the IPv6 one not
    add("axfr-allowed", query(ZONE, "AXFR", edns=0), TCP, PEER4)
    add("axfr-allowed-udp", query(ZONE, "AXFR"), UDP, PEER4)
    add("axfr-refused-v6", query(ZONE, "AXFR"), TCP, PEER6)
    add("ixfr-allowed-behind", header(ns=1) + wire_name(ZONE) + struct.pack("!HH", 251, 1)
        + b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 0, 22) + b"\0\0" + struct.pack("!5I", 1, 2, 3, 4, 5),
        TCP, PEER4)
    add("ixfr-allowed-no-soa", query(ZONE, "IXFR"), TCP, PEER4)
    add("class-ch", query(svc("mysql"), rdclass="CH"))
    add("qtype-opt", query(svc("mysql"), "OPT", edns=0))

    # EDNS and COOKIEs (RFC 6891, RFC 7873)
    add("edns-version-1", header(ar=1) + QUESTION + opt(version=1))
    add("edns-small-buffer", query(svc("farm"), "SRV", edns=0, payload=100))
    add("edns-unknown-option", query(svc("mysql"), edns=0,
                                     options=[dns.edns.GenericOption(65001, b"xyz")]))
    add("cookie-client", query(svc("mysql"), edns=0, options=[cookie(b"\x01" * 8)]), UDP, PEER4)
    add("cookie-client-server",
        query(svc("mysql"), edns=0, options=[cookie(b"\x01" * 8, b"\x01\0\0\0" + b"\x02" * 12)]),
        TCP, PEER6)
    add("cookie-bad-length", query(svc("mysql"), edns=0, options=[cookie(b"\x01" * 5)]), UDP, PEER4)
    add("cookie-twice", header(ar=1) + QUESTION
        + opt(rdata=struct.pack("!HH", 10, 8) + b"\x03" * 8 + struct.pack("!HH", 10, 8) + b"\x04" * 8))
    add("opt-truncated-option", header(ar=1) + QUESTION + opt(rdata=struct.pack("!HH", 10, 8) + b"\x01"))
    add("opt-not-root", header(ar=1) + QUESTION + opt(owner=wire_name("x.")))
    add("opt-twice", header(ar=2) + QUESTION + opt() + opt())
    add("opt-compressed-owner", header(ar=1) + QUESTION + opt(owner=b"\xc0\x0c"))
    add("ixfr-with-soa", header(ns=1) + QNAME + struct.pack("!HH", 251, 1)
        + b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 0, 22) + b"\0\0" + struct.pack("!5I", 1, 2, 3, 4, 5))

    # Malformed messages
    add("compression-loop-qname", header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1))
    # the additional record's owner points at itself
    add("compression-loop-additional", header(ar=1) + QUESTION + struct.pack("!H", 0xc000 | (12 + len(QUESTION)))
        + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x7f\0\0\1")
    add("qr-set", header(flags=0x8100) + QUESTION)
    add("opcode-5-update", header(flags=5 << 11) + QUESTION)
    add("opcode-2-status", header(flags=2 << 11, qd=0))
    add("qdcount-2", header(qd=2) + QUESTION + QUESTION)
    add("qdcount-0", header(qd=0, ar=1) + opt())
    add("ancount-1", header(an=1) + QUESTION + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\1\2\3\4")
    add("truncated-header", header()[:11])
    add("header-only", header())
    add("truncated-qname", header() + QNAME[:9])
    add("truncated-qtype", header() + QNAME + b"\0")
    add("truncated-opt", (header(ar=1) + QUESTION + opt(rdata=struct.pack("!HH", 10, 8) + b"\x01" * 8))[:-5])
    add("trailing-garbage", query(svc("mysql"), edns=0) + b"\xde\xad\xbe\xef")
    add("label-too-long", header() + b"\x40" + b"a" * 64 + b"\0" + struct.pack("!HH", 1, 1))
    add("name-255", header() + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
        + b"\x3d" + b"d" * 61 + b"\0" + struct.pack("!HH", 1, 1))
    add("tsig-like-additional", header(ar=1) + QUESTION + wire_name("key.")
        + struct.pack("!HHIH", 250, 255, 0, 3) + b"\0\0\0", TCP)
    # A TSIG hidden in a CNAME's rdata, then a second TSIG.
    add("tsig-hidden-in-rdata", header(ar=4) + QUESTION + hiding_cname(TSIG) + TSIG
        + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\1\2\3\4"
        + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\1\2\3\5")
    return s


TARGET = "mysql.test-1.example.com."
C_TCP, C_AAAA, C_EDNS = 1, 2, 4


def upstream_seeds():
    """(file name, flags, reply) for each seed: replies as a resolver sends them."""
    s = []

    def reply(rdtype="A", answer=(), authority=(), rcode="NOERROR", flags=0, edns=True):
        q = dns.message.make_query(TARGET, rdtype, use_edns=0 if edns else False)
        q.id = 0x1234  # the target puts the lookup's ID in; a fixed one keeps seeds stable
        r = dns.message.make_response(q)
        r.flags |= dns.flags.RA | flags
        r.set_rcode(dns.rcode.from_text(rcode))
        # one rrset per record: an rdataset's order varies from run to run
        for owner, ttl, t, *rdata in answer:
            r.answer.extend(dns.rrset.from_text(owner, ttl, "IN", t, rd) for rd in rdata)
        for owner, ttl, t, *rdata in authority:
            r.authority.extend(dns.rrset.from_text(owner, ttl, "IN", t, rd) for rd in rdata)
        return r.to_wire(max_size=65535)

    def add(name, msg, flags=C_EDNS):
        s.append((name, flags, msg))

    soa = ("example.com.", 300, "SOA", "ns.example.com. admin.example.com. 1 3600 600 86400 60")
    add("a-one", reply(answer=[(TARGET, 300, "A", "192.0.2.1")]))
    add("a-one-no-edns", reply(answer=[(TARGET, 300, "A", "192.0.2.1")], edns=False), 0)
    add("a-one-tcp", reply(answer=[(TARGET, 300, "A", "192.0.2.1")]), C_TCP)
    add("a-several", reply(answer=[(TARGET, 60, "A", *[f"192.0.2.{i}" for i in range(1, 9)])]))
    add("aaaa-two", reply("AAAA", answer=[(TARGET, 300, "AAAA", "2001:db8::1", "2001:db8::2")]),
        C_EDNS | C_AAAA)
    add("cname-chain", reply(answer=[(TARGET, 30, "CNAME", "db.example.net."),
                                     ("db.example.net.", 20, "CNAME", "db1.example.org."),
                                     ("db1.example.org.", 10, "A", "198.51.100.7")]))
    add("cname-chain-records-first", reply(answer=[("db1.example.org.", 10, "A", "198.51.100.7"),
                                                   ("db.example.net.", 20, "CNAME", "db1.example.org."),
                                                   (TARGET, 30, "CNAME", "db.example.net.")]))
    chain = [(f"h{i}.example.com." if i else TARGET, 60, "CNAME", f"h{i + 1}.example.com.")
             for i in range(12)]
    add("cname-chain-too-long", reply(answer=chain + [("h12.example.com.", 60, "A", "192.0.2.12")]))
    add("cname-loop", reply(answer=[(TARGET, 60, "CNAME", "x.example.com."),
                                    ("x.example.com.", 60, "CNAME", TARGET)]))
    add("unrelated-records", reply(answer=[("other.example.com.", 60, "A", "203.0.113.1"),
                                           (TARGET, 60, "A", "192.0.2.1"),
                                           (TARGET, 60, "TXT", "\"not asked\"")]))
    add("mixed-case-owner", reply(answer=[("MySQL.Test-1.Example.COM.", 60, "A", "192.0.2.1")]))
    add("ttl-huge", reply(answer=[(TARGET, 2**31 - 1, "A", "192.0.2.1")]))
    add("ttl-zero", reply(answer=[(TARGET, 0, "A", "192.0.2.1")]))
    add("many-records-udp-512", reply(answer=[(TARGET, 60, "A", *[f"10.0.{i // 250}.{i % 250}"
                                                                  for i in range(120)])]), 0)
    add("nxdomain-soa", reply(rcode="NXDOMAIN", authority=[soa]))
    add("nodata-soa", reply("AAAA", authority=[soa]), C_EDNS | C_AAAA)
    add("nxdomain-no-soa", reply(rcode="NXDOMAIN"))
    add("servfail", reply(rcode="SERVFAIL"))
    add("refused", reply(rcode="REFUSED"))
    add("truncated", reply(flags=dns.flags.TC))
    add("wrong-question", reply("AAAA", answer=[(TARGET, 60, "AAAA", "2001:db8::1")]))
    add("not-a-response", reply(answer=[(TARGET, 60, "A", "192.0.2.1")])[:2] + b"\x01\x00"
        + reply(answer=[(TARGET, 60, "A", "192.0.2.1")])[4:])
    one = reply(answer=[(TARGET, 60, "A", "192.0.2.1")])
    add("header-only", one[:12])
    add("cut-in-rdata", one[:-3])
    add("empty", b"")
    # Chains that come back into the zone (the names of test-2 in
    # fuzz_upstream.c), with what the upstream claims about our names: none
    # of it may be served.
    def in_zone(name):
        return f"{name}.svc.{ZONE}" if name else ZONE

    def back(name, rdtype="A", via=(), extra=(), rcode="NOERROR"):
        links, owner = [], TARGET
        for hop in via:
            links.append((owner, 60, "CNAME", hop))
            owner = hop
        links.append((owner, 60, "CNAME", name))
        forged = [(name, 3000, "A", "6.6.6.6"), (name, 3000, "AAAA", "2001:db8::666")]
        return reply(rdtype, answer=links + forged + list(extra), rcode=rcode)

    mysql2 = in_zone("mysql.test-2")
    add("back-forged", back(mysql2))
    add("back-forged-aaaa", back(mysql2, "AAAA"), C_EDNS | C_AAAA)
    add("back-forged-tcp", back(mysql2), C_TCP)
    add("back-via-link", back(in_zone("multi.test-2"), via=["a.example.net."],
                              extra=[(in_zone("multi.test-2"), 60, "CNAME", "evil.example.com."),
                                     ("evil.example.com.", 60, "A", "6.6.6.7")]))
    add("back-nxdomain", back(in_zone("nosuch.test-2"), rcode="NXDOMAIN",
                              extra=[("evil.example.com.", 60, "A", "6.6.6.7")]))
    add("back-apex", back(in_zone(""), "AAAA"), C_EDNS | C_AAAA)
    add("back-endpoint", back("192-168-1-20." + in_zone("multi.test-2")))
    add("back-endpoint-aaaa", back("2001-db8--21." + in_zone("multi.test-2"), "AAAA"),
        C_EDNS | C_AAAA)
    add("back-alias", back(in_zone("alias.test-2")))
    add("back-loop", back(in_zone("back.test-2")))
    add("back-leaves-again", back(in_zone("other.test-2")))
    add("back-letter-case", back("MySQL.Test-2.SVC.Cluster.LOCAL."))
    add("dangling", reply(answer=[(TARGET, 60, "CNAME", "x.example.net.")], authority=[soa]))
    add("dangling-nxdomain", reply(answer=[(TARGET, 60, "CNAME", "x.example.net."),
                                           ("x.example.net.", 60, "CNAME", "y.example.net.")],
                                   rcode="NXDOMAIN", authority=[soa]))
    add("many-records-700", reply(answer=[(TARGET, 60, "A", *[f"10.{i // 250}.{i % 250}.1"
                                                              for i in range(700)])]), C_TCP)
    # TSIG records: plain, and two hidden in a CNAME's rdata, where a walk
    # by RDLENGTH sees none.
    add("tsig", with_additional(one, TSIG, 1))
    a = b"\0" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\1\2\3\4"
    add("tsig-hidden", with_additional(one, hiding_cname(TSIG * 2) + a * 4, 5))
    return s


# Handcrafted mapping files: valid corners the other seeds lack.
CONFIGS = {
    "every-option.ini": """[server]
zone = Example.Internal.
listen = 127.0.0.1:5353, [::1]:5353, 0.0.0.0
ttl = 0
tcp-idle-timeout = 3600
tcp-max-connections = 65535
workers = 2
tcp-message-timeout = 60
tcp-pipeline = 1000
udp-max-size = 4096
user = 0:0

[upstream]
servers = 10.96.0.10, [fd00::10]:5353
timeout = 30
cache-size = 16
max-stale = 0
negative-ttl = 300

[http]
health = 127.0.0.1:8080
ready = [::1]:8081
metrics = off
lameduck = 5

[namespace a]
b = 10.0.0.1
""",
    "shapes.ini": """[upstream]
servers = none
[namespace test-1]
mysql = mysql.test-1.example.com
web = web.example.com. resolve=no
[namespace test-2]
mysql = 192.168.1.10
v6 = 2001:db8::10
redis = 192.168.1.20 192.168.1.21,192.168.1.22
pg = 192.168.1.30:5433
ldap = 10.0.0.5:389, [2001:db8::5]:389 srv=_ldap._udp ttl=30
sip = 10.0.0.9:5060 srv=_sip._sctp
db = mysql.test-2.svc.cluster.local
chain = db.test-2.svc.cluster.local
""",
    "continuation.ini": """; a value over several lines; written with a BOM and CRLF line ends
[namespace ns]
many = 10.0.0.1:1, 10.0.0.2:1,
       10.0.0.3:1
\t10.0.0.4:1
# comment
other = [2001:db8::1]:2 [2001:db8::2]:2
""",
    "cname-loop.ini": """[upstream]
servers = none
[namespace a]
x = y.a.svc.cluster.local
y = x.a.svc.cluster.local
z = 10.0.0.1
""",
    "endpoints.ini": """[upstream]
servers = none
[namespace a]
pg = 10.0.0.1:5432 10.0.0.2:5432
alias = 10-0-0-1.pg.a.svc.cluster.local
rev = 2001:db8::
""",
    "warnings.ini": """[upstream]
servers = /nonexistent/resolv.conf
[namespace a]
b = 10.0.0.1 srv=_x._tcp
c = c.example.com
[namespace b]
""",
    "empty.ini": "",
}


RELOAD_READ, RELOAD_HUGE = 1, 2


def reload_seeds():
    """(name, flags, running text, new text or None for the same)."""
    def services(n, first=1, ns="a"):
        return f"[namespace {ns}]\n" + "".join(
            f"s{i} = 10.0.{i // 250}.{i % 250 + 1}\n" for i in range(first, first + n))

    full = "[server]\nttl = 5\n" + services(40) + services(4, ns="b")
    torn = full[:full.index("s13 =")]
    return [
        ("unchanged", 0, full, None),
        ("unchanged-read", RELOAD_READ, full, None),
        ("edit", RELOAD_READ, full, full.replace("s7 = 10.0.0.8", "s7 = 10.0.0.99")),
        ("torn", RELOAD_READ, full, torn),
        ("torn-mid-line", RELOAD_READ, full, full[:full.index("s13 =") + 7]),
        ("emptied", RELOAD_READ, full, ""),
        ("comments-only", 0, full, "; nothing here yet\n\n# nor here\n"),
        ("server-only", 0, full, "[server]\nttl = 5\n"),
        ("confirmed", 0, full, "[server]\nconfirm-removal = 43\n" + services(1)),
        ("confirmed-torn", 0, full, "[server]\nconfirm-removal = 43\n[namespace a]\n"),
        ("guard-off", 0, full, "[server]\nmax-removal = 100\n" + services(2)),
        ("guard-zero", 0, full, "[server]\nmax-removal = 0\n" + services(29)),
        ("renamed", 0, full, services(44, first=100)),
        ("half", 0, full, services(22)),            # 22 of 44: exactly max-removal
        ("half-and-one", 0, full, services(21)),
        ("small", 0, "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2\nz = 10.0.0.3\n",
         "[namespace a]\nx = 10.0.0.1\n"),
        ("bad-running", 0, "[namespace a]\nx = 10.0.0.300\n", services(3)),
        ("too-large", RELOAD_READ | RELOAD_HUGE, full, full),
    ]


def http_seeds():
    """(name, bytes) of the http/ seeds."""
    def req(method="GET", path="/health", version="HTTP/1.1", headers=(("Host", "x"),), body=b"",
            eol=b"\r\n"):
        head = f"{method} {path} {version}".encode() + eol
        for k, v in headers:
            head += f"{k}: {v}".encode() + eol
        return head + eol + body

    return [
        ("get-health", req()),
        ("get-ready", req(path="/ready")),
        ("get-metrics", req(path="/metrics", headers=(("Host", "x"), ("Accept", "text/plain"),
                                                      ("Accept-Encoding", "gzip")))),
        ("head-health", req("HEAD")),
        ("http10", req(version="HTTP/1.0", headers=())),
        ("lf-only", req(path="/health?x=1", eol=b"\n")),
        ("absolute-form", req(path="http://127.0.0.1:8080/ready")),
        ("close", req(headers=(("Host", "x"), ("Connection", "keep-alive, close")))),
        ("pipelined", req() + req("HEAD", "/ready") + req(path="/nope") + req(path="/metrics")),
        ("leading-crlf", b"\r\n\r\n" + req()),
        ("post-body", req("POST", headers=(("Content-Length", "5"),), body=b"hello") + req()),
        ("get-body", req(headers=(("Content-Length", "3"),), body=b"abc") + req()),
        ("huge-length", req(headers=(("Content-Length", "99999999999"),), body=b"x" * 64)),
        ("chunked", req("POST", headers=(("Transfer-Encoding", "chunked"),),
                        body=b"5\r\nhello\r\n0\r\n\r\n")),
        ("two-lengths", req(headers=(("Content-Length", "1"), ("Content-Length", "2")), body=b"ab")),
        ("long-head", req(headers=tuple((f"X-{i}", "a" * 200) for i in range(45)))),
        ("http2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("folded", req(headers=(("X", "a"),)).replace(b"X: a\r\n", b"X: a\r\n b\r\n")),
        ("no-version", b"GET /health\r\n\r\n"),
        ("incomplete", b"GET /health HTTP/1.1\r\nHost: x\r\n"),
    ]


def control_seeds():
    """(name, bytes) of the control/ seeds."""
    return [
        ("status", b"status\n"),
        ("reload", b"reload\n"),
        ("health", b"health\n"),
        ("stop", b"stop\n"),
        ("crlf-blanks", b" \tstatus \r\n"),
        ("two-lines", b"status\nreload\n"),
        ("unknown", b"restart\n"),
        ("replace", b"replace\nanswering\n"),
        ("argument", b"reload now\n"),
        ("empty", b"\n"),
        ("binary", b"\x16\x03\x01\x02\x00status\n"),
        ("no-newline", b"status"),
        ("cr-inside", b"sta\rtus\n"),
        ("long", b"s" * 300 + b"\n"),
        ("long-exact", b"s" * 255 + b"\n"),
    ]


def handover_seeds():
    """(name, bytes) of the handover/ seeds."""
    head = b"replace: pid 1234, svcmapd 0.1.0\nfact serial 1795688001\nfact digest 0123456789abcdef\n"
    good = [b"health 10.0.0.1 tcp:5432 down 1700000123456 3 1 65647",
            b"health 10.0.0.2 tcp:5432 up 1700000000000 0 2 0",
            b"health 10.0.1.1 http:8080/healthz?x=1 down 1700000000000 1 0 197111",
            b"health 10.0.1.2 http:8080/healthz?x=1 up 1700000000000 2 0 131075",
            b"health 2001:db8::1 tcp:6379 down 1700000000000 1 1 65647",
            b"health 10.0.0.9 tcp:5432 down 1700000000000 1 0 65647"]

    def offer(lines, end=b"sockets 0\n"):
        return head + b"".join(b"fact " + l + b"\n" for l in lines) + end

    return [
        ("state", offer(good)),
        ("state-unfinished", offer(good, end=b"")),
        ("no-health", offer([])),
        ("later-fields", offer([good[0] + b" 7 more"])),
        ("twice", offer([good[0], good[0].replace(b"down", b"up")])),
        ("hostile", offer([b"health 10.0.0.1  tcp:5432 down 1 1 0 0",
                           b"health 10.0.0.256 tcp:5432 down 1 1 0 0",
                           b"health 10.0.0.1 tcp:65536 down 1 1 0 0",
                           b"health 10.0.0.1 tcp:5432 down 99999999999999999999 1 0 0",
                           b"health 10.0.0.1 tcp:5432 down 1 1 101 0",
                           b"health 10.0.0.1 tcp:5432 down 1 1 0 393216",
                           b"health 10.0.1.1 http:8080/healthz down 1 1 0 0",
                           b"health 10.0.0.1 tcp:5432 down 1 1 0 0\r",
                           b"health 10.0.0.1 tcp:5432 d\xc3\xb6wn 1 1 0 0",
                           b"weather 10.0.0.1 tcp:5432 down"])),
        ("long-line", head + b"fact health " + b"x" * 600 + b"\nsockets 0\n"),
        ("socket-alone", head + b"socket udp 127.0.0.1:53\nsockets 1\n"),
        ("refused", b"error: replace: a reload is under way; try again once it has ended\nexit 1\n"),
    ]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# import/: small Lists in the shapes of the API, compact as the API server
# writes them, beside the golden files of tests/data/import.
IMPORTS = {
    "typed-endpoints.json": '{"kind":"EndpointsList","apiVersion":"v1","items":[{"metadata":'
                            '{"name":"pg","namespace":"db"},"subsets":[{"addresses":[{"ip":"10.0.0.1"}],'
                            '"ports":[{"name":"pg","port":5432}]}]}]}',
    "slice-v6.json": '{"kind":"List","apiVersion":"v1","items":[{"kind":"Service","apiVersion":"v1",'
                     '"metadata":{"name":"web","namespace":"a"},"spec":{"ports":[{"name":"h","port":80,'
                     '"protocol":"UDP"}]}},{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",'
                     '"metadata":{"name":"web-1","namespace":"a","labels":{"kubernetes.io/service-name":'
                     '"web"}},"addressType":"IPv6","endpoints":[{"addresses":["fd00::1"],"conditions":'
                     '{"ready":true}}],"ports":[{"name":"h","port":8080,"protocol":"UDP"}]}]}',
    "cname-chain.json": '{"kind":"List","items":[' + ",".join(
        '{"kind":"Service","metadata":{"name":"s%d","namespace":"n"},"spec":{"type":"ExternalName",'
        '"externalName":"s%d.n.svc.cluster.local"}}' % (i, i + 1) for i in range(5)) + "]}",
}


def main():
    answer = os.path.join(HERE, "corpus", "answer")
    config = os.path.join(HERE, "corpus", "config")
    os.makedirs(answer, exist_ok=True)
    os.makedirs(config, exist_ok=True)

    names = set()
    for name, transport, peer, msg in answer_seeds():
        assert name not in names, name
        names.add(name)
        write(os.path.join(answer, name), bytes([transport, peer]) + msg)

    upstream = os.path.join(HERE, "corpus", "upstream")
    os.makedirs(upstream, exist_ok=True)
    for name, flags, msg in upstream_seeds():
        write(os.path.join(upstream, name), bytes([flags]) + msg)

    reload = os.path.join(HERE, "corpus", "reload")
    os.makedirs(reload, exist_ok=True)
    for name, flags, running, new in reload_seeds():
        text = running if new is None else running + "\n===\n" + new
        write(os.path.join(reload, name), bytes([flags]) + text.encode())

    http = os.path.join(HERE, "corpus", "http")
    os.makedirs(http, exist_ok=True)
    for name, data in http_seeds():
        write(os.path.join(http, name), data)

    control = os.path.join(HERE, "corpus", "control")
    os.makedirs(control, exist_ok=True)
    for name, data in control_seeds():
        write(os.path.join(control, name), data)

    handover = os.path.join(HERE, "corpus", "handover")
    os.makedirs(handover, exist_ok=True)
    for name, data in handover_seeds():
        write(os.path.join(handover, name), data)

    shutil.copyfile(os.path.join(ROOT, "conf", "svcmapd.ini"), os.path.join(config, "svcmapd.ini"))
    bad = os.path.join(ROOT, "tests", "data", "bad")
    for f in sorted(os.listdir(bad)):
        if f.endswith(".ini"):
            shutil.copyfile(os.path.join(bad, f), os.path.join(config, "golden-" + f))
    for name, text in CONFIGS.items():
        data = text.encode()
        if name == "continuation.ini":
            data = b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")  # BOM, CRLF
        write(os.path.join(config, name), data)

    imp = os.path.join(HERE, "corpus", "import")
    os.makedirs(imp, exist_ok=True)
    data = os.path.join(ROOT, "tests", "data", "import")
    for sub, prefix in (("", "golden-"), ("bad", "bad-")):
        for f in sorted(os.listdir(os.path.join(data, sub))):
            if f.endswith(".json"):
                shutil.copyfile(os.path.join(data, sub, f), os.path.join(imp, prefix + f))
    for name, text in IMPORTS.items():
        write(os.path.join(imp, name), text.encode())
    print(f"{len(answer_seeds())} answer seeds, {len(os.listdir(config))} config seeds, "
          f"{len(upstream_seeds())} upstream seeds, {len(reload_seeds())} reload seeds, "
          f"{len(os.listdir(imp))} import seeds, {len(http_seeds())} http seeds, "
          f"{len(control_seeds())} control seeds, {len(handover_seeds())} handover seeds",
          file=sys.stderr)


if __name__ == "__main__":
    main()
