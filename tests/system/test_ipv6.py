"""test_ipv6.py -- listening on [::1] (SPEC 1 `listen`, SPEC 3: UDP and TCP on every
listen address) and the apex NS glue / ns.dns answers that follow the listen list."""

import pytest

from conftest import ZONE, ask, check_answer, check_nodata, ipv6_loopback_available, run_tool, svc

pytestmark = pytest.mark.skipif(not ipv6_loopback_available(),
                                reason="::1 cannot be bound on this host (no IPv6 loopback)")

CONFIG = """[server]
listen = {listen}

[namespace a]
b = 10.0.0.1 2001:db8::1
"""
NS = "ns.dns." + ZONE


@pytest.mark.parametrize("tcp", [False, True])
def test_ipv6_only_listen(svcmapd, tcp):
    s = svcmapd(CONFIG.format(listen="[::1]:@PORT6@"), ipv4=False, ipv6=True)
    check_answer(s.ask(svc("b.a"), "AAAA", tcp=tcp), [f"{svc('b.a')} 5 IN AAAA 2001:db8::1"])
    check_answer(s.ask(svc("b.a"), "A", tcp=tcp), [f"{svc('b.a')} 5 IN A 10.0.0.1"])
    check_answer(s.ask(NS, "AAAA", tcp=tcp), [f"{NS} 5 IN AAAA ::1"])
    check_nodata(s.ask(NS, "A", tcp=tcp))
    check_answer(s.ask(ZONE, "NS", tcp=tcp), [f"{ZONE} 5 IN NS {NS}"],
                 additional=[f"{NS} 5 IN AAAA ::1"])


@pytest.mark.parametrize("tcp", [False, True])
def test_both_families(svcmapd, tcp):
    s = svcmapd(CONFIG.format(listen="127.0.0.1:@PORT@, [::1]:@PORT6@"), ipv6=True)
    for host, port in (("127.0.0.1", s.port), ("::1", s.port6)):
        r = ask(port, svc("b.a"), "A", host=host, tcp=tcp)
        check_answer(r, [f"{svc('b.a')} 5 IN A 10.0.0.1"])
        r = ask(port, ZONE, "NS", host=host, tcp=tcp)
        check_answer(r, [f"{ZONE} 5 IN NS {NS}"],
                     additional=[f"{NS} 5 IN A 127.0.0.1", f"{NS} 5 IN AAAA ::1"])
        check_answer(ask(port, NS, "A", host=host, tcp=tcp), [f"{NS} 5 IN A 127.0.0.1"])
        check_answer(ask(port, NS, "AAAA", host=host, tcp=tcp), [f"{NS} 5 IN AAAA ::1"])


def test_dig_over_ipv6(svcmapd):
    s = svcmapd(CONFIG.format(listen="[::1]:@PORT6@"), ipv4=False, ipv6=True)
    rc, out = run_tool(["dig", "@::1", "-p", str(s.port6), "+time=1", "+tries=1", "+nosearch",
                        "+norec", svc("b.a"), "AAAA"])
    assert rc == 0, out
    assert "status: NOERROR" in out and ";; flags: qr aa;" in out, out
    assert f"{svc('b.a')}\t5\tIN\tAAAA\t2001:db8::1" in out, out
