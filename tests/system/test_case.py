"""test_case.py -- SPEC 2: matching is case-insensitive; the question and the answer's
owner names keep the query's exact letter case (0x20, V42-V45).

dnspython's Name == is case-insensitive, so names are compared with .to_text() and the
question is compared byte for byte (check_header does that)."""

import pytest

from conftest import check_header, check_soa, svc


def owners(section):
    return [rrset.name.to_text() for rrset in section]


@pytest.mark.parametrize("tcp", [False, True])
def test_a_mixed_case(std, tcp):
    """V43."""
    q = "MySQL.TeSt-2.SvC.cLuStEr.LoCaL."
    r = std.ask(q, "A", tcp=tcp)
    check_header(r, "NOERROR")
    assert r.question[0].name.to_text() == q
    assert owners(r.answer) == [q], f"answer owner must be {q!r}, got {owners(r.answer)}"
    assert [rd.address for rd in r.answer[0]] == ["192.168.1.10"]


def test_several_records_mixed_case(std):
    q = "REDIS.TEST-2.SVC.CLUSTER.LOCAL."
    r = std.ask(q, "A", one_rr=True)
    check_header(r, "NOERROR")
    assert owners(r.answer) == [q, q]


def test_srv_mixed_case(std):
    """V44: _port._proto matched case-insensitively; owner echoes the case;
    the target is the service name (its case is not specified)."""
    q = "_PG._Tcp.Pg.TEST-2.svc.Cluster.Local."
    r = std.ask(q, "SRV")
    check_header(r, "NOERROR")
    assert owners(r.answer) == [q]
    rd = r.answer[0][0]
    assert (rd.priority, rd.weight, rd.port) == (0, 100, 5433)
    assert rd.target.to_text().lower() == svc("pg.test-2")
    assert [x.to_text().lower() for x in r.additional] == [f"{svc('pg.test-2')} 5 in a 192.168.1.30"]


def test_endpoint_name_mixed_case(std):
    q = "192-168-1-21.Redis.Test-2.SVC.cluster.local."
    r = std.ask(q, "A")
    check_header(r, "NOERROR")
    assert owners(r.answer) == [q]


def test_cname_chase_mixed_case(std):
    """The first owner (the query name) keeps its case; chased names compare case-insensitively."""
    q = "Alias.Test-1.Svc.Cluster.Local."
    r = std.ask(q, "A", one_rr=True)
    check_header(r, "NOERROR")
    assert owners(r.answer)[0] == q
    assert r.answer[0][0].target.to_text().lower() == svc("web.test-2")
    assert sorted(x.to_text().lower() for x in r.answer[1:]) == [
        f"{svc('web.test-2')} 5 in a 10.1.0.{i}" for i in (1, 2, 3)]


def test_nxdomain_mixed_case(std):
    """V42: question echoed exactly; the SOA is the zone's."""
    q = "not-a-service.TestNs.svc.ClUsTeR.lOcAl."
    r = std.ask(q, "A")
    check_header(r, "NXDOMAIN")
    assert r.answer == [] and len(r.authority) == 1
    check_soa(r.authority[0], "cluster.local.", 5, std.soa_serial)


@pytest.mark.parametrize("q,rdtype", [("Cluster.LOCAL.", "SOA"), ("CLUSTER.local.", "NS"),
                                      ("DNS-Version.Cluster.Local.", "TXT"),
                                      ("NS.dns.CLUSTER.local.", "A")])
def test_fixed_records_mixed_case(std, q, rdtype):
    """V45: apex and fixed names too."""
    r = std.ask(q, rdtype)
    check_header(r, "NOERROR")
    assert owners(r.answer) == [q]


def test_refused_mixed_case(std):
    q = "WwW.ExAmPlE.CoM."
    r = std.ask(q, "A", rd=True)
    check_header(r, "REFUSED", aa=False)
