"""test_reverse.py -- SPEC 2.5: PTR under in-addr.arpa / ip6.arpa (V48, V49, V53)."""

import dns.reversename
import pytest

from conftest import check_answer, check_header, check_refused, svc


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
