"""test_reverse.py -- SPEC 2.5: PTR under in-addr.arpa / ip6.arpa (V48, V49, V53), and the
reverse zones of [server] reverse."""

import dns.reversename
import pytest

from conftest import (ZONE, check_answer, check_header, check_nodata, check_nxdomain,
                      check_refused, check_soa, in_private_netns, svc)


def rev(ip):
    return dns.reversename.from_address(ip).to_text()


@pytest.mark.parametrize("ip,target,ttl", [
    ("192.168.1.10", svc("mysql.test-2"), 5),                       # one address -> service
    ("192.168.1.30", svc("pg.test-2"), 5),                          # one address with port
    ("192.168.1.20", "192-168-1-20." + svc("redis.test-2"), 5),     # several -> endpoint name
    ("192.168.1.21", "192-168-1-21." + svc("redis.test-2"), 5),
    ("10.1.0.2", "10-1-0-2." + svc("web.test-2"), 5),               # several with ports
    ("10.0.0.5", "10-0-0-5." + svc("ldap.test-2"), 30),             # service ttl=30
    ("10.60.0.60", "10-60-0-60." + svc("big60.test-2"), 5),         # from a continuation line
    ("2001:db8::1", svc("v6.test-2"), 5),                           # IPv6, one address
    ("2001:db8::53", svc("v6port.test-2"), 5),
    ("2001:db8::5", "2001-db8--5." + svc("ldap.test-2"), 30),       # IPv6 endpoint name
    ("2001:db8::2", "2001-db8--2." + svc("dual.test-2"), 5),
])
@pytest.mark.parametrize("tcp", [False, True])
def test_ptr(std, ip, target, ttl, tcp):
    name = rev(ip)
    check_answer(std.ask(name, "PTR", tcp=tcp), [f"{name} {ttl} IN PTR {target}"])


def test_ptr_mixed_case_reverse_name(std):
    """Reverse names match case-insensitively (hex nibbles and labels) and echo the case."""
    name = rev("2001:db8::1").upper().replace("IP6.ARPA", "Ip6.ArPa")
    r = std.ask(name, "PTR")
    check_header(r, "NOERROR")
    assert len(r.answer) == 1 and r.answer[0].name.to_text() == name, r.to_text()
    assert r.answer[0][0].target.to_text().lower() == svc("v6.test-2")


@pytest.mark.parametrize("qname", [
    rev("192.168.1.11"),            # not mapped
    rev("127.0.0.1"),               # the listen address is not a mapping
    rev("2001:db8::99"),
    "1.168.192.in-addr.arpa.",      # a parent of mapped names
    "168.192.in-addr.arpa.",
    "in-addr.arpa.",
    "ip6.arpa.",
    "x." + rev("192.168.1.10"),     # below a mapped name
])
@pytest.mark.parametrize("rdtype", ["PTR", "SOA", "NS"])
def test_unmapped_reverse_names_refused(std, qname, rdtype):
    check_refused(std.ask(qname, rdtype))


def test_address_in_several_services(svcmapd):
    """V52: an address mapped by several services gets one PTR per service (the
    endpoint name where that service has several addresses)."""
    s = svcmapd("[server]\nlisten = 127.0.0.1:@PORT@\n\n[namespace a]\nx = 10.0.0.1\n"
                "y = 10.0.0.1, 10.0.0.2\n\n[namespace b]\nx = 10.0.0.1\n")
    name = rev("10.0.0.1")
    check_answer(s.ask(name, "PTR"), [f"{name} 5 IN PTR {svc('x.a')}",
                                      f"{name} 5 IN PTR 10-0-0-1.{svc('y.a')}",
                                      f"{name} 5 IN PTR {svc('x.b')}"])
    name = rev("10.0.0.2")
    check_answer(s.ask(name, "PTR"), [f"{name} 5 IN PTR 10-0-0-2.{svc('y.a')}"])


# ---------------------------------------------------------------- [server] reverse

REVERSE = """[server]
listen = 127.0.0.1:@PORT@
reverse = 192.168.0.0/16, 2001:db8::/32
[upstream]
servers = none
[namespace a]
x = 192.168.1.10
y = 192.168.1.20, 192.168.1.21
v6 = 2001:db8::1
out = 10.0.0.1
"""
REV4, REV6 = "168.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."


@pytest.fixture
def rev_server(svcmapd):
    return svcmapd(REVERSE)


def test_reverse_zone_ptr(rev_server):
    """Mapped addresses answer PTR in a reverse zone as everywhere."""
    s = rev_server
    check_answer(s.ask(rev("192.168.1.10"), "PTR"), [f"{rev('192.168.1.10')} 5 IN PTR {svc('x.a')}"])
    check_answer(s.ask(rev("192.168.1.21"), "PTR"),
                 [f"{rev('192.168.1.21')} 5 IN PTR 192-168-1-21.{svc('y.a')}"])
    check_answer(s.ask(rev("2001:db8::1"), "PTR", tcp=True),
                 [f"{rev('2001:db8::1')} 5 IN PTR {svc('v6.a')}"])


@pytest.mark.parametrize("ip,zone", [("192.168.1.99", REV4), ("192.168.200.1", REV4),
                                     ("2001:db8::99", REV6)])
@pytest.mark.parametrize("rdtype", ["PTR", "A", "ANY"])
def test_reverse_zone_unmapped_address_nxdomain(rev_server, ip, zone, rdtype):
    """An unmapped address in a reverse zone: NXDOMAIN with that zone's SOA (owner the
    reverse zone; mname, rname, timers and serial of the zone)."""
    check_nxdomain(rev_server.ask(rev(ip), rdtype), zone=zone, names_zone=ZONE,
                   serial=rev_server.serial())


@pytest.mark.parametrize("qname", [
    "x." + rev("192.168.1.10"),                # below an address
    "010.1." + REV4,                            # not how an address is written
    "256.1." + REV4,
    "foo." + REV4,
    "3." + REV4,                                # an octet under which nothing is mapped
])
def test_reverse_zone_other_names_nxdomain(rev_server, qname):
    check_nxdomain(rev_server.ask(qname, "PTR"), zone=REV4, names_zone=ZONE)


@pytest.mark.parametrize("qname,zone", [("1." + REV4, REV4),
                                        ("0.0.0.0.0.0.0.0.0.0.0.0." + REV6, REV6)])
@pytest.mark.parametrize("rdtype", ["PTR", "A", "SOA", "NS"])
def test_reverse_zone_names_above_addresses_nodata(rev_server, qname, zone, rdtype):
    """1.168.192.in-addr.arpa has mapped addresses below it: NODATA (RFC 8020), not
    NXDOMAIN, which would deny them."""
    check_nodata(rev_server.ask(qname, rdtype), zone=zone, names_zone=ZONE)


def test_reverse_zone_other_types_at_address_nodata(rev_server):
    check_nodata(rev_server.ask(rev("192.168.1.10"), "TXT"), zone=REV4, names_zone=ZONE)
    check_nodata(rev_server.ask(rev("2001:db8::1"), "AAAA"), zone=REV6, names_zone=ZONE)


@pytest.mark.parametrize("zone", [REV4, REV6, REV4.upper()])
def test_reverse_zone_apex_soa_ns(rev_server, zone):
    """The apex answers SOA (its own: owner the reverse zone, echoing the query's case)
    and NS ns.dns.<zone>. with its address; other types NODATA."""
    s = rev_server
    r = s.ask(zone, "SOA")
    check_header(r, "NOERROR")
    assert len(r.answer) == 1 and r.authority == [] and r.additional == [], r.to_text()
    assert r.answer[0].name.to_text() == zone
    check_soa(r.answer[0], zone, 5, s.serial(), names_zone=ZONE)
    check_answer(s.ask(zone, "NS"), [f"{zone} 5 IN NS ns.dns.{ZONE}"],
                 additional=[f"ns.dns.{ZONE} 5 IN A 127.0.0.1"])
    check_nodata(s.ask(zone, "A"), zone=zone, names_zone=ZONE)
    check_refused(s.ask(zone, "AXFR", tcp=True))


@pytest.mark.parametrize("qname", [
    rev("10.0.0.2"),               # outside every reverse zone: as without them
    "0.0.10.in-addr.arpa.",
    "192.in-addr.arpa.",           # above a reverse zone
    "in-addr.arpa.",
    "db8.2001.ip6.arpa.",
    "1.0.0.2.ip6.arpa.",
])
@pytest.mark.parametrize("rdtype", ["PTR", "SOA"])
def test_outside_reverse_zones_refused(rev_server, qname, rdtype):
    check_refused(rev_server.ask(qname, rdtype))


def test_mapped_address_outside_reverse_zones_keeps_ptr(rev_server):
    check_answer(rev_server.ask(rev("10.0.0.1"), "PTR"),
                 [f"{rev('10.0.0.1')} 5 IN PTR {svc('out.a')}"])


GETHOSTBYADDR = """python3 -c '
import socket, sys
try:
    print(socket.gethostbyaddr(sys.argv[1])[0])
except socket.herror as e:
    print("herror", e.errno, e.strerror)
' {ip}; getent hosts {ip}; echo "getent exit $?"
"""


def test_getent_unmapped_address_fails_cleanly(svcmapd_bin, tmp_path):
    """Issue 14: glibc's reverse lookup of an unmapped address in a reverse zone that
    svcmapd serves is "not found" (NXDOMAIN: herror 1, HOST_NOT_FOUND), not a resolver
    failure (REFUSED: herror 2, TRY_AGAIN, which applications report as a DNS outage);
    a mapped one is found. glibc asks svcmapd alone, in a private network namespace."""
    config = REVERSE.replace("127.0.0.1:@PORT@", "127.0.0.1:53")
    r = in_private_netns(svcmapd_bin, tmp_path, config,
                         GETHOSTBYADDR.format(ip="192.168.1.99")
                         + GETHOSTBYADDR.format(ip="192.168.1.10"))
    lines = r.stdout.splitlines()
    assert lines[:2] == ["herror 1 Unknown host", "getent exit 2"], r.stdout + r.stderr
    assert lines[2:] == [svc("x.a")[:-1], f"192.168.1.10    {svc('x.a')[:-1]}", "getent exit 0"], (
        r.stdout + r.stderr)
