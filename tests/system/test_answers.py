"""test_answers.py -- SPEC 2.1 (which rcode), 2.2 (fixed records), 2.3 (address targets),
header flags and TTLs, against the shared server on data/standard.ini."""

import time

import pytest

from conftest import (ZONE, check_answer, check_header, check_nodata, check_nxdomain,
                      check_soa, rrlines, svc)


def A(name, ttl, addr):
    return f"{name} {ttl} IN A {addr}"


def AAAA(name, ttl, addr):
    return f"{name} {ttl} IN AAAA {addr}"


# ---------------------------------------------------------------- header


@pytest.mark.parametrize("rd", [False, True])
@pytest.mark.parametrize("qid", [0, 0x1234, 0xFFFF])
def test_header_id_and_rd_copied(std, rd, qid):
    r = std.ask(svc("mysql.test-2"), "A", rd=rd, qid=qid)
    check_answer(r, [A(svc("mysql.test-2"), 5, "192.168.1.10")])


@pytest.mark.parametrize("rd", [False, True])
def test_header_on_nxdomain(std, rd):
    r = std.ask(svc("nothing.test-2"), "A", rd=rd)
    check_nxdomain(r, serial=std.soa_serial)


@pytest.mark.parametrize("tcp", [False, True])
def test_header_over_tcp(std, tcp):
    r = std.ask(svc("redis.test-2"), "A", tcp=tcp, rd=True)
    check_answer(r, [A(svc("redis.test-2"), 5, "192.168.1.20"),
                     A(svc("redis.test-2"), 5, "192.168.1.21")])


# ---------------------------------------------------------------- 2.1 the rcode table


def test_existing_name_type_present(std):
    """Row 1 (V01): NOERROR, records in ANSWER, nothing in AUTHORITY/ADDITIONAL."""
    r = std.ask(svc("mysql.test-2"), "A")
    check_answer(r, [A(svc("mysql.test-2"), 5, "192.168.1.10")])


@pytest.mark.parametrize("name,rdtype", [
    ("mysql.test-2", "AAAA"),      # V08: IPv4-only service, AAAA
    ("v6.test-2", "A"),            # IPv6-only service, A
    ("mysql.test-2", "TXT"),       # V13
    ("mysql.test-2", "MX"),
    ("mysql.test-2", "SOA"),       # V28: SOA below the apex
    ("mysql.test-2", "NS"),
    ("mysql.test-2", "CNAME"),     # address service has no CNAME
    ("mysql.test-2", "PTR"),       # V51
    ("mysql.test-2", "SRV"),       # no ports -> no SRV
    ("redis.test-2", "SRV"),
    ("redis.test-2", "AAAA"),
    ("pg.test-2", "AAAA"),
    ("ldap.test-2", "SRV"),
    ("mysql.test-1", "SRV"),       # ExternalName: SRV -> NODATA
])
def test_existing_name_type_absent_is_nodata(std, name, rdtype):
    """Row 2: NOERROR, empty ANSWER, zone SOA in AUTHORITY."""
    check_nodata(std.ask(svc(name), rdtype), serial=std.soa_serial)


@pytest.mark.parametrize("qname", [
    svc("nothing.test-2"),                         # V10: no such service
    svc("nothing.nope"),                           # V11: no such namespace
    "nope.svc." + ZONE,                            # namespace that does not exist
    "foo." + ZONE,                                 # last label neither svc nor pod
    "x.ns.dns." + ZONE,
    "x.dns-version." + ZONE,
    "1-2-3-4.test-2.pod." + ZONE,                  # no pod records
    "bogusendpoint." + svc("redis.test-2"),        # V15
    "bogusendpoint." + svc("nothing.test-2"),      # V16
    "192-168-1-99." + svc("redis.test-2"),         # endpoint name of an address not mapped
    "192-168-1-10." + svc("mysql.test-2"),         # single address: no endpoint names
    "192-168-1-30." + svc("pg.test-2"),            # single address with port: none either
    "a.b." + svc("redis.test-2"),                  # three labels left of the service
    "a.192-168-1-20." + svc("redis.test-2"),       # below an endpoint name
    "_udp." + svc("pg.test-2"),                    # pg's SRV name is _pg._tcp
    "_tcp." + svc("dnsd.test-2"),                  # dnsd's is _dns._udp
    "_tcp." + svc("mysql.test-2"),                 # no ports, no SRV name
    "_tcp." + svc("mysql.test-1"),                 # under an ExternalName
    "_tcp." + svc("nothing.test-2"),
    "x._tcp." + svc("pg.test-2"),
    "_tcp.x." + svc("web.test-2"),
    "_pg._udp." + svc("pg.test-2"),                # wrong protocol
    "_redis._tcp." + svc("redis.test-2"),          # no ports, no SRV name
    "_p._tcp." + svc("mysql.test-1"),              # V29/V30: under an ExternalName
    "x." + svc("mysql.test-1"),
    "x.y." + svc("mysql.test-1"),
    svc("mysql.test-3"),
    "mysql\\.test-2.svc." + ZONE,                  # a dot inside a label is not two labels
    "mysql\\000.test-2.svc." + ZONE,               # a NUL byte in a label
    "*.test-2.svc." + ZONE,                        # no wildcards (CoreDNS >= 1.9)
    "any.test-2.svc." + ZONE,
    ("a" * 63 + ".") * 3 + "b" * 36 + ".test-2.svc." + ZONE,   # 255 octets on the wire
])
@pytest.mark.parametrize("rdtype", ["A", "SRV"])
def test_name_not_in_mapping_is_nxdomain(std, qname, rdtype):
    """Row 3: NXDOMAIN, zone SOA in AUTHORITY, AA=1."""
    check_nxdomain(std.ask(qname, rdtype), serial=std.soa_serial)


STRUCTURAL = ["svc." + ZONE, "pod." + ZONE, "test-1.svc." + ZONE, "test-2.svc." + ZONE]
TYPES = ["A", "AAAA", "SRV", "TXT", "NS", "SOA", "PTR", "MX", "CNAME"]


@pytest.mark.parametrize("qname,rdtype",
                         [(n, t) for n in STRUCTURAL for t in TYPES]
                         + [(ZONE, t) for t in TYPES if t not in ("NS", "SOA")])
def test_structural_names_are_nodata(std, qname, rdtype):
    """Row 4 (V20-V23, V41): svc., pod., existing namespaces, apex (except SOA/NS)."""
    check_nodata(std.ask(qname, rdtype), serial=std.soa_serial)


ENTS = ["dns." + ZONE,                       # above ns.dns.<zone>
        "_tcp." + svc("pg.test-2"),           # above _pg._tcp.pg..., one address
        "_tcp." + svc("web.test-2"),          # several addresses with ports
        "_udp." + svc("dnsd.test-2"),         # srv=_dns._udp
        "_UDP." + svc("DNSD.Test-2"),         # matched without case
        "_tcp." + svc("v6port.test-2")]


@pytest.mark.parametrize("qname", ENTS)
@pytest.mark.parametrize("rdtype", ["A", "AAAA", "SRV", "TXT", "ANY"])
def test_empty_non_terminals_are_nodata(std, qname, rdtype):
    """SPEC 2.1: a name that exists only because names below it do is NODATA, not
    NXDOMAIN, which would deny the names below (RFC 8020)."""
    check_nodata(std.ask(qname, rdtype), serial=std.soa_serial)


def test_nodata_soa_uses_zone_ttl_not_service_ttl(std):
    """ldap has ttl=30; its NODATA still carries the zone SOA with min(5,300)."""
    r = std.ask(svc("ldap.test-2"), "TXT")
    check_nodata(r, ttl=5, serial=std.soa_serial)


def test_ns_dns_other_types_are_nodata(std):
    check_nodata(std.ask("ns.dns." + ZONE, "TXT"), serial=std.soa_serial)
    check_nodata(std.ask("ns.dns." + ZONE, "AAAA"), serial=std.soa_serial)


def test_dns_version_other_type_is_nodata(std):
    check_nodata(std.ask("dns-version." + ZONE, "A"), serial=std.soa_serial)


# ---------------------------------------------------------------- 2.2 fixed records


def test_apex_soa(std):
    """V39: the SOA in ANSWER, exact shape, serial = Unix time of the load."""
    r = std.ask(ZONE, "SOA")
    check_header(r, "NOERROR")
    assert len(r.answer) == 1 and r.authority == [] and r.additional == [], r.to_text()
    serial = check_soa(r.answer[0], ZONE, 5)
    assert abs(serial - time.time()) < 600, f"serial {serial} is not a recent Unix time"
    assert serial == std.soa_serial


def test_apex_ns_with_glue(std):
    """V40: NS ns.dns.<zone>., glue A = the listen address in ADDITIONAL."""
    r = std.ask(ZONE, "NS")
    check_answer(r, [f"{ZONE} 5 IN NS ns.dns.{ZONE}"],
                 additional=[A("ns.dns." + ZONE, 5, "127.0.0.1")])


def test_ns_dns_a_is_listen_address(std):
    r = std.ask("ns.dns." + ZONE, "A")
    check_answer(r, [A("ns.dns." + ZONE, 5, "127.0.0.1")])


def test_dns_version_txt(std):
    """V12: dns-version.<zone>. 28800 IN TXT "1.1.0", TTL independent of ttl."""
    r = std.ask("dns-version." + ZONE, "TXT")
    check_answer(r, [f"dns-version.{ZONE} 28800 IN TXT \"1.1.0\""])


@pytest.mark.parametrize("ttl,soa_ttl", [(0, 0), (300, 300), (301, 300), (3600, 300)])
def test_soa_ttl_is_min_ttl_300(svcmapd, ttl, soa_ttl):
    s = svcmapd(f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = {ttl}\n\n"
                "[namespace a]\nb = 10.0.0.1\n")
    r = s.ask(ZONE, "SOA")
    check_header(r, "NOERROR")
    assert r.answer[0].ttl == soa_ttl
    check_soa(r.answer[0], ZONE, ttl)
    check_answer(s.ask(svc("b.a"), "A"), [A(svc("b.a"), ttl, "10.0.0.1")])
    check_nxdomain(s.ask(svc("c.a"), "A"), ttl=ttl)
    check_nodata(s.ask(svc("b.a"), "AAAA"), ttl=ttl)


def test_defaults_zone_cluster_local_ttl_5(svcmapd):
    """No zone, no ttl in [server]: cluster.local and 5."""
    s = svcmapd("[server]\nlisten = 127.0.0.1:@PORT@\n\n[namespace a]\nb = 10.0.0.1\n")
    check_answer(s.ask(svc("b.a"), "A"), [A(svc("b.a"), 5, "10.0.0.1")])
    check_soa(s.ask(ZONE, "SOA").answer[0], ZONE, 5)


def test_other_zone(svcmapd):
    """The zone is configurable, including several labels; cluster.local is then out of zone."""
    s = svcmapd("[server]\nzone = k8s.corp.example\nlisten = 127.0.0.1:@PORT@\nttl = 7\n\n"
                "[namespace a]\nb = 10.0.0.1\nc = b.a.svc.k8s.corp.example\n",
                zone="k8s.corp.example")
    z = "k8s.corp.example."
    check_answer(s.ask("b.a.svc." + z, "A"), [A("b.a.svc." + z, 7, "10.0.0.1")])
    check_answer(s.ask("c.a.svc." + z, "A"), [f"c.a.svc.{z} 7 IN CNAME b.a.svc.{z}",
                                               A("b.a.svc." + z, 7, "10.0.0.1")])
    check_soa(s.ask(z, "SOA").answer[0], z, 7)
    check_answer(s.ask(z, "NS"), [f"{z} 7 IN NS ns.dns.{z}"],
                 additional=[A("ns.dns." + z, 7, "127.0.0.1")])
    check_answer(s.ask("dns-version." + z, "TXT"), [f"dns-version.{z} 28800 IN TXT \"1.1.0\""])
    check_nxdomain(s.ask("x.a.svc." + z, "A"), zone=z, ttl=7)
    check_nodata(s.ask("a.svc." + z, "A"), zone=z, ttl=7)
    r = s.ask("b.a.svc.cluster.local.", "A")
    check_header(r, "REFUSED", aa=False)


# ---------------------------------------------------------------- 2.3 address targets


def test_single_ipv4(std):
    check_answer(std.ask(svc("mysql.test-2"), "A"), [A(svc("mysql.test-2"), 5, "192.168.1.10")])


def test_several_ipv4(std):
    """V06: one A per address."""
    check_answer(std.ask(svc("redis.test-2"), "A"),
                 [A(svc("redis.test-2"), 5, "192.168.1.20"),
                  A(svc("redis.test-2"), 5, "192.168.1.21")])


def test_single_ipv6(std):
    """V17."""
    check_answer(std.ask(svc("v6.test-2"), "AAAA"), [AAAA(svc("v6.test-2"), 5, "2001:db8::1")])


def test_mixed_families_and_service_ttl(std):
    """V25/V26 and ttl=30: A gets the IPv4, AAAA the IPv6, both with the service TTL."""
    check_answer(std.ask(svc("ldap.test-2"), "A"), [A(svc("ldap.test-2"), 30, "10.0.0.5")])
    check_answer(std.ask(svc("ldap.test-2"), "AAAA"),
                 [AAAA(svc("ldap.test-2"), 30, "2001:db8::5")])


def test_address_records_ignore_ports(std):
    """pg = 192.168.1.30:5433: the A record is the address."""
    check_answer(std.ask(svc("pg.test-2"), "A"), [A(svc("pg.test-2"), 5, "192.168.1.30")])
    check_answer(std.ask(svc("v6port.test-2"), "AAAA"),
                 [AAAA(svc("v6port.test-2"), 5, "2001:db8::53")])


def test_continuation_lines(std):
    """big60 is written 10 addresses a line over 6 lines: all 60 are served (TCP: too big for UDP)."""
    r = std.ask(svc("big60.test-2"), "A", tcp=True)
    check_answer(r, [A(svc("big60.test-2"), 5, f"10.60.0.{i}") for i in range(1, 61)])
    r = std.ask(svc("mid.test-2"), "A")
    check_answer(r, [A(svc("mid.test-2"), 5, f"10.15.0.{i}") for i in range(1, 16)])


def test_endpoint_names_several_addresses(std):
    """V33-V35: each address of a several-address service has <dashed-ip>.<svc> A/AAAA."""
    for ip in ("192.168.1.20", "192.168.1.21"):
        name = ip.replace(".", "-") + "." + svc("redis.test-2")
        check_answer(std.ask(name, "A"), [A(name, 5, ip)])
        check_nodata(std.ask(name, "AAAA"), serial=std.soa_serial)
        check_nodata(std.ask(name, "SRV"), serial=std.soa_serial)
    # V32: IPv6 ':' -> '-', with the service TTL.
    name = "2001-db8--5." + svc("ldap.test-2")
    check_answer(std.ask(name, "AAAA"), [AAAA(name, 30, "2001:db8::5")])
    check_nodata(std.ask(name, "A"), serial=std.soa_serial)
    name = "10-0-0-5." + svc("ldap.test-2")
    check_answer(std.ask(name, "A"), [A(name, 30, "10.0.0.5")])


def test_shuffled_per_query(std):
    """Records of one RRset are shuffled per query: 50 queries show more than one order."""
    orders = set()
    for _ in range(50):
        r = std.ask(svc("shuf.test-2"), "A", one_rr=True)
        check_header(r, "NOERROR")
        addrs = tuple(rrset[0].address for rrset in r.answer)
        assert sorted(addrs) == ["10.6.0.1", "10.6.0.2", "10.6.0.3", "10.6.0.4"], addrs
        orders.add(addrs)
    assert len(orders) > 1, f"always the same order over 50 queries: {orders}"


# ---------------------------------------------------------------- ANY (RFC 8482)


@pytest.mark.parametrize("name,rrsets", [
    (svc("redis.test-2"), {"A": [A(svc("redis.test-2"), 5, "192.168.1.20"),
                                 A(svc("redis.test-2"), 5, "192.168.1.21")]}),
    (svc("ldap.test-2"), {"A": [A(svc("ldap.test-2"), 30, "10.0.0.5")],
                          "AAAA": [AAAA(svc("ldap.test-2"), 30, "2001:db8::5")]}),
    (svc("pg.test-2"), {"A": [A(svc("pg.test-2"), 5, "192.168.1.30")],
                        "SRV": [f"{svc('pg.test-2')} 5 IN SRV 0 100 5433 {svc('pg.test-2')}"]}),
    (svc("mysql.test-1"), {"CNAME": [f"{svc('mysql.test-1')} 5 IN CNAME mysql.test-1.example.com."]}),
    ("dns-version." + ZONE, {"TXT": [f"dns-version.{ZONE} 28800 IN TXT \"1.1.0\""]}),
    (ZONE, {"NS": [f"{ZONE} 5 IN NS ns.dns.{ZONE}"], "SOA": None}),
])
def test_any_is_minimal(std, name, rrsets):
    """ANY -> exactly one RRset that exists at the name, whole, NOERROR."""
    r = std.ask(name, "ANY")
    check_header(r, "NOERROR")
    assert r.authority == [], rrlines(r.authority)
    assert len(r.answer) == 1, f"ANY must give one RRset, got {rrlines(r.answer)}"
    rrset = r.answer[0]
    rtype = rrset.to_text().split()[3]
    assert rtype in rrsets, f"ANY answered {rtype}, which does not exist at {name}"
    if rrsets[rtype] is None:
        check_soa(rrset, ZONE, 5, std.soa_serial)
    else:
        assert rrlines(r.answer) == sorted(rrsets[rtype])


def test_any_nxdomain(std):
    check_nxdomain(std.ask(svc("nothing.test-2"), "ANY"), serial=std.soa_serial)


def test_any_empty_nonterminal_is_nodata(std):
    check_nodata(std.ask("test-2.svc." + ZONE, "ANY"), serial=std.soa_serial)
