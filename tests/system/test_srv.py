"""test_srv.py -- SPEC 2.4: ports and SRV records (Kubernetes DNS spec shapes)."""

import pytest

from conftest import check_answer, check_nodata, check_nxdomain, svc


def srv(owner, ttl, weight, port, target):
    return f"{owner} {ttl} IN SRV 0 {weight} {port} {target}"


PG = svc("pg.test-2")


@pytest.mark.parametrize("owner", ["_pg._tcp." + PG, PG])
def test_single_address_srv_targets_service_name(std, owner):
    """V03/V05: default name _<svc>._tcp, and the same at the bare name; prio 0, weight 100,
    target = the service name, its A in ADDITIONAL."""
    r = std.ask(owner, "SRV")
    check_answer(r, [srv(owner, 5, 100, 5433, PG)],
                 additional=[f"{PG} 5 IN A 192.168.1.30"])


@pytest.mark.parametrize("owner", ["_v6port._tcp." + svc("v6port.test-2"), svc("v6port.test-2")])
def test_single_ipv6_srv(std, owner):
    """V04/V18: an [IPv6]:PORT target, AAAA in ADDITIONAL."""
    t = svc("v6port.test-2")
    check_answer(std.ask(owner, "SRV"), [srv(owner, 5, 100, 8053, t)],
                 additional=[f"{t} 5 IN AAAA 2001:db8::53"])


WEB = svc("web.test-2")


@pytest.mark.parametrize("owner", ["_web._tcp." + WEB, WEB])
def test_several_addresses_srv_weights_33_endpoint_targets(std, owner):
    """V31 shape: one SRV per endpoint, weight 100/3 = 33, target the endpoint name,
    the endpoint's A in ADDITIONAL."""
    eps = [(f"10-1-0-{i}.{WEB}", f"10.1.0.{i}") for i in (1, 2, 3)]
    check_answer(std.ask(owner, "SRV"), [srv(owner, 5, 33, 8080, name) for name, _ in eps],
                 additional=[f"{name} 5 IN A {ip}" for name, ip in eps])


DUAL = svc("dual.test-2")


@pytest.mark.parametrize("owner", ["_dual._tcp." + DUAL, DUAL])
def test_two_families_srv_weights_50(std, owner):
    """Two endpoints (IPv4 + IPv6): weights 50, A and AAAA in ADDITIONAL."""
    v4, v6 = "10-2-0-1." + DUAL, "2001-db8--2." + DUAL
    check_answer(std.ask(owner, "SRV"), [srv(owner, 5, 50, 80, v4), srv(owner, 5, 50, 80, v6)],
                 additional=[f"{v4} 5 IN A 10.2.0.1", f"{v6} 5 IN AAAA 2001:db8::2"])


def test_dual_endpoint_names(std):
    v4, v6 = "10-2-0-1." + DUAL, "2001-db8--2." + DUAL
    check_answer(std.ask(v4, "A"), [f"{v4} 5 IN A 10.2.0.1"])
    check_answer(std.ask(v6, "AAAA"), [f"{v6} 5 IN AAAA 2001:db8::2"])
    check_nodata(std.ask(v4, "AAAA"), serial=std.soa_serial)
    check_nodata(std.ask(v6, "A"), serial=std.soa_serial)
    # The service name itself has both families.
    check_answer(std.ask(DUAL, "A"), [f"{DUAL} 5 IN A 10.2.0.1"])
    check_answer(std.ask(DUAL, "AAAA"), [f"{DUAL} 5 IN AAAA 2001:db8::2"])


def test_web_endpoint_names(std):
    for i in (1, 2, 3):
        name = f"10-1-0-{i}.{WEB}"
        check_answer(std.ask(name, "A"), [f"{name} 5 IN A 10.1.0.{i}"])


DNSD = svc("dnsd.test-2")


@pytest.mark.parametrize("owner", ["_dns._udp." + DNSD, DNSD])
def test_srv_override_and_service_ttl(std, owner):
    """srv=_dns._udp names the port; ttl=60 applies to SRV, ADDITIONAL and endpoint names."""
    eps = [(f"10-5-0-{i}.{DNSD}", f"10.5.0.{i}") for i in (1, 2)]
    check_answer(std.ask(owner, "SRV"), [srv(owner, 60, 50, 53, name) for name, _ in eps],
                 additional=[f"{name} 60 IN A {ip}" for name, ip in eps])
    for name, ip in eps:
        check_answer(std.ask(name, "A"), [f"{name} 60 IN A {ip}"])


@pytest.mark.parametrize("qname", [
    "_dnsd._tcp." + DNSD,       # the default name is replaced by srv=
    "_dns._tcp." + DNSD,        # same name, other protocol
    "_web._udp." + WEB,
    "_http._tcp." + WEB,
    "_pg._tcp." + svc("web.test-2"),
])
def test_srv_other_names_nxdomain(std, qname):
    check_nxdomain(std.ask(qname, "SRV"), serial=std.soa_serial)


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT", "CNAME"])
def test_srv_name_other_types_nodata(std, rdtype):
    """_pg._tcp.pg... exists (it has SRV); other types there are NODATA."""
    check_nodata(std.ask("_pg._tcp." + PG, rdtype), serial=std.soa_serial)


def test_srv_over_tcp(std):
    owner = "_web._tcp." + WEB
    eps = [(f"10-1-0-{i}.{WEB}", f"10.1.0.{i}") for i in (1, 2, 3)]
    check_answer(std.ask(owner, "SRV", tcp=True),
                 [srv(owner, 5, 33, 8080, name) for name, _ in eps],
                 additional=[f"{name} 5 IN A {ip}" for name, ip in eps])
