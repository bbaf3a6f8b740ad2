"""test_tools.py -- the whole path through the operators' tools: dig and kdig.

Every invocation names @127.0.0.1 and -p PORT explicitly, with one try and a short
timeout, so no query leaves loopback."""

import re

import pytest

from conftest import TcpProxy, run_tool, svc


def dig(port, *args):
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1",
                        "+nosearch", *args])
    assert rc == 0, f"dig exited {rc}:\n{out}"
    return out


def header(out, sep=","):
    """(status, set of flags, ANSWER count) from dig (sep ',') or kdig (sep ';') output."""
    m = re.search(r"->>HEADER<<- opcode: QUERY" + sep + r" status: (\w+)" + sep + r" id: \d+", out)
    assert m, f"no header line in:\n{out}"
    f = re.search(r";; [Ff]lags: ([a-z ]*); QUERY: 1" + sep + r" ANSWER: (\d+)", out)
    assert f, f"no flags line in:\n{out}"
    return m.group(1), set(f.group(1).split()), int(f.group(2))


def section(out, name="ANSWER"):
    """Records of one section, whitespace-normalised."""
    lines, inside = [], False
    for line in out.splitlines():
        if line.startswith(f";; {name} SECTION:"):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            lines.append(" ".join(line.split()))
    return sorted(lines)


def test_dig_a(std):
    out = dig(std.port, "+norec", svc("mysql.test-2"), "A")
    assert header(out) == ("NOERROR", {"qr", "aa"}, 1), out
    assert section(out) == [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"], out


def test_dig_rd_copied_no_ra(std):
    out = dig(std.port, "+rec", svc("redis.test-2"), "A")
    assert header(out) == ("NOERROR", {"qr", "aa", "rd"}, 2), out
    assert section(out) == [f"{svc('redis.test-2')} 5 IN A 192.168.1.20",
                            f"{svc('redis.test-2')} 5 IN A 192.168.1.21"]


def test_dig_nxdomain_soa(std):
    out = dig(std.port, "+norec", svc("nothing.test-2"), "A")
    assert header(out) == ("NXDOMAIN", {"qr", "aa"}, 0), out
    auth = section(out, "AUTHORITY")
    assert len(auth) == 1 and re.fullmatch(
        r"cluster\.local\. 5 IN SOA ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. "
        r"\d+ 7200 1800 86400 5", auth[0]), out


def test_dig_srv_additional(std):
    out = dig(std.port, "+norec", "_pg._tcp." + svc("pg.test-2"), "SRV")
    assert header(out) == ("NOERROR", {"qr", "aa"}, 1), out
    assert section(out) == [f"_pg._tcp.{svc('pg.test-2')} 5 IN SRV 0 100 5433 {svc('pg.test-2')}"]
    assert section(out, "ADDITIONAL") == [f"{svc('pg.test-2')} 5 IN A 192.168.1.30"], out


def test_dig_reverse(std):
    out = dig(std.port, "+norec", "-x", "192.168.1.20")
    assert header(out) == ("NOERROR", {"qr", "aa"}, 1), out
    assert section(out) == [
        f"20.1.168.192.in-addr.arpa. 5 IN PTR 192-168-1-20.{svc('redis.test-2')}"], out


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig_root_ns_refused(std, transport):
    """CoreDNS forward's health probe: `. IN NS` with RD=1 -> REFUSED, not silence, no aa."""
    out = dig(std.port, transport, ".", "NS")
    assert header(out) == ("REFUSED", {"qr", "rd"}, 0), out


def test_dig_truncation_retries_over_tcp(std):
    """dig without EDNS gets TC=1 over UDP and retries over TCP by itself."""
    out = dig(std.port, "+norec", "+noedns", svc("big60.test-2"), "A")
    assert "Truncated, retrying in TCP mode" in out, out
    assert header(out) == ("NOERROR", {"qr", "aa"}, 60), out
    assert "(TCP)" in out, out


def test_kdig_keepopen_one_connection(std):
    """kdig +tcp +keepopen sends several names over one TCP connection (counted by a
    loopback relay) and every answer is right."""
    proxy = TcpProxy(std.port)
    try:
        rc, out = run_tool(["kdig", "@127.0.0.1", "-p", str(proxy.port), "+tcp", "+keepopen",
                            "+timeout=2", "+retry=0", "+norecurse",
                            svc("mysql.test-2"), "A",
                            svc("ldap.test-2"), "AAAA",
                            "_web._tcp." + svc("web.test-2"), "SRV",
                            svc("nothing.test-2"), "A"])
    finally:
        proxy.close()
    assert rc == 0, out
    blocks = out.split(";; ->>HEADER<<-")[1:]
    assert len(blocks) == 4, f"expected 4 replies:\n{out}"
    assert header(";; ->>HEADER<<-" + blocks[0], ";") == ("NOERROR", {"qr", "aa"}, 1)
    assert section(blocks[0]) == [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"]
    assert section(blocks[1]) == [f"{svc('ldap.test-2')} 30 IN AAAA 2001:db8::5"]
    web = svc("web.test-2")
    assert section(blocks[2]) == sorted(f"_web._tcp.{web} 5 IN SRV 0 33 8080 10-1-0-{i}.{web}"
                                        for i in (1, 2, 3))
    assert header(";; ->>HEADER<<-" + blocks[3], ";") == ("NXDOMAIN", {"qr", "aa"}, 0)
    assert all("(TCP)" in b for b in blocks), out
    assert proxy.connections == 1, f"kdig opened {proxy.connections} TCP connections"
