"""test_cname.py -- SPEC 2.3: hostname targets (ExternalName shape) and in-zone chasing.

Out-of-zone targets are only queried with qtype CNAME/SRV here: an A/AAAA query would
need upstream resolution (SPEC 2.3.1, a later feature) and must not leave loopback."""

import pytest

from conftest import check_answer, check_header, check_nodata, check_nxdomain, rrlines, svc

WEB = svc("web.test-2")
WEB_A = [f"{WEB} 5 IN A 10.1.0.{i}" for i in (1, 2, 3)]


@pytest.mark.parametrize("name,target,ttl", [
    ("mysql.test-1", "mysql.test-1.example.com.", 5),   # V36
    ("trailing.test-1", "db.example.net.", 5),          # trailing dot in the file
    ("ext-ttl.test-1", "www.example.org.", 42),         # ttl= on a hostname service
    ("alias.test-1", WEB, 5),                           # in-zone: CNAME query -> CNAME alone
])
@pytest.mark.parametrize("tcp", [False, True])
def test_cname_query_gives_cname_alone(std, name, target, ttl, tcp):
    check_answer(std.ask(svc(name), "CNAME", tcp=tcp), [f"{svc(name)} {ttl} IN CNAME {target}"])


def test_in_zone_target_is_chased(std):
    """V38: A -> the CNAME first, then the target's records."""
    r = std.ask(svc("alias.test-1"), "A", one_rr=True)
    check_answer(r, [f"{svc('alias.test-1')} 5 IN CNAME {WEB}"] + WEB_A)
    assert r.answer[0].to_text() == f"{svc('alias.test-1')} 5 IN CNAME {WEB}", (
        f"the CNAME must come first, got {[x.to_text() for x in r.answer]}")


def test_chain_of_two(std):
    a2, a1 = svc("alias2.test-1"), svc("alias.test-1")
    r = std.ask(a2, "A", one_rr=True)
    check_answer(r, [f"{a2} 5 IN CNAME {a1}", f"{a1} 5 IN CNAME {WEB}"] + WEB_A)
    assert [x.to_text() for x in r.answer[:2]] == [f"{a2} 5 IN CNAME {a1}",
                                                   f"{a1} 5 IN CNAME {WEB}"], (
        f"chain out of order: {[x.to_text() for x in r.answer]}")


@pytest.mark.parametrize("rdtype,record", [
    ("A", f"{svc('ldap.test-2')} 30 IN A 10.0.0.5"),
    ("AAAA", f"{svc('ldap.test-2')} 30 IN AAAA 2001:db8::5"),
])
def test_chased_records_keep_their_family_and_ttl(std, rdtype, record):
    name = svc("to-ldap.test-1")
    r = std.ask(name, rdtype, one_rr=True)
    check_answer(r, [f"{name} 5 IN CNAME {svc('ldap.test-2')}", record])
    assert r.answer[0].rdtype == 5, "CNAME first"


def test_cname_to_endpoint_name(std):
    name, ep = svc("to-ep.test-1"), "192-168-1-20." + svc("redis.test-2")
    check_answer(std.ask(name, "A"), [f"{name} 5 IN CNAME {ep}", f"{ep} 5 IN A 192.168.1.20"])


def test_chain_longer_than_10_stops(std):
    """c0 -> ... -> c11 -> web: twelve CNAMEs. Followed at most 10 deep, so web's A
    never appears; the CNAMEs given are the start of the chain, in order. The first has
    TTL 0: an answer that stops at a CNAME must not make a cache take its target for a
    name without records (test_upstream.test_cname_alone_poisons_no_cache)."""
    r = std.ask(svc("c0.test-1"), "A", one_rr=True, tcp=True)
    check_header(r, "NOERROR")
    got = [x.to_text() for x in r.answer]
    want = [f"{svc(f'c{i}.test-1')} {0 if i == 0 else 5} IN CNAME {svc(f'c{i + 1}.test-1')}"
            for i in range(11)]
    want.append(f"{svc('c11.test-1')} 5 IN CNAME {WEB}")
    assert all(x.rdtype == 5 for x in r.answer), f"records past the 10-deep limit: {got}"
    assert 10 <= len(got) <= 11, f"expected the first 10 (or 11) CNAMEs, got {len(got)}: {got}"
    assert got == want[:len(got)], f"chain not in order: {got}"


def test_chain_of_10_is_complete(std):
    """c2 -> ... -> c11 -> web is ten CNAMEs: followed to the end (TCP: the answer may
    exceed 512 bytes)."""
    r = std.ask(svc("c2.test-1"), "A", one_rr=True, tcp=True)
    check_header(r, "NOERROR")
    got = [x.to_text() for x in r.answer]
    want = [f"{svc(f'c{i}.test-1')} 5 IN CNAME {svc(f'c{i + 1}.test-1')}" for i in range(2, 11)]
    want.append(f"{svc('c11.test-1')} 5 IN CNAME {WEB}")
    assert got[:10] == want, f"chain: {got}"
    assert sorted(got[10:]) == WEB_A, f"web's A records missing after 10 CNAMEs: {got[10:]}"


def test_loop_ends(std):
    """loop-a <-> loop-b: the answer comes, NOERROR, only CNAMEs, loop-a's first (TTL 0:
    it stops at a CNAME, test_chain_longer_than_10_stops)."""
    a, b = svc("loop-a.test-1"), svc("loop-b.test-1")
    for tcp in (False, True):
        r = std.ask(a, "A", one_rr=True, tcp=tcp)
        check_header(r, "NOERROR")
        got = [x.to_text() for x in r.answer]
        assert got and got[0] == f"{a} 0 IN CNAME {b}", got
        assert all(x.rdtype == 5 for x in r.answer) and len(got) <= 11, got
        assert r.authority == [], rrlines(r.authority)


def test_external_srv_is_nodata(std):
    check_nodata(std.ask(svc("mysql.test-1"), "SRV"), serial=std.soa_serial)


@pytest.mark.parametrize("qname", [
    "_p._tcp." + svc("mysql.test-1"),
    "_mysql._tcp." + svc("mysql.test-1"),
    "endpoint." + svc("mysql.test-1"),
    "a.b." + svc("mysql.test-1"),
    "x." + svc("alias.test-1"),
])
@pytest.mark.parametrize("rdtype", ["CNAME", "SRV"])
def test_below_hostname_service_nxdomain(std, qname, rdtype):
    check_nxdomain(std.ask(qname, rdtype), serial=std.soa_serial)
