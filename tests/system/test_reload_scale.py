"""test_reload_scale.py -- SPEC 4 at scale: a large mapping (100,000 services) through
rounds of reloads that change, add and remove services (and whole namespaces), each
compared, record by record, with a fresh svcmapd started on the same file.

A reload that reuses what did not change (README "Reload") must serve exactly what
a start would: every record of the zone (AXFR), and the answers to the names the
round touched, the names it removed, and a sample of those it left alone, PTR too.
Each reload is a patch of the services that changed (and of those the patches before
it compiled), in front of the zone compiled at the start."""

import random
import re

import dns.rcode

from conftest import SLOW, rrlines, run_tool

SERVICES = 100_000
PER_NAMESPACE = 200
ROUNDS = 4
TOUCH = 150  # services changed, added and removed per round (each)
SAMPLE = 300  # untouched names asked per round
HEAD = """[server]
listen = 127.0.0.1:@PORT@
reverse = 10.0.0.0/8, fd00:5c::/32

[transfer]
allow = 127.0.0.1
"""


class Mapping:
    """The services, by namespace, in file order, and what the rounds did to them."""

    def __init__(self, rng):
        self.rng = rng
        self.k = 0  # the last 10.x address handed out
        self.namespaces = {}
        for i in range(SERVICES):
            ns = f"ns-{i // PER_NAMESPACE:04d}"
            self.namespaces.setdefault(ns, {})[f"svc-{i:06d}"] = self.value()
        self.next_ns = len(self.namespaces)
        self.next_svc = SERVICES

    def addr(self):
        self.k += 1
        return f"10.{(self.k >> 16) & 255}.{(self.k >> 8) & 255}.{self.k & 255}"

    def value(self):
        kind = self.rng.random()
        if kind < 0.5:
            return self.addr()
        if kind < 0.7:
            return ", ".join(self.addr() for _ in range(2 + self.rng.randrange(3)))
        if kind < 0.8:
            return f"{self.addr()}:{1024 + self.rng.randrange(60000)}"
        if kind < 0.9:
            return f"fd00:5c::{self.rng.randrange(1 << 16):x}:{self.rng.randrange(1 << 16):x}"
        return f"host-{self.rng.randrange(10**6)}.example.net"

    def text(self):
        out = [HEAD]
        for ns, services in self.namespaces.items():
            out.append(f"[namespace {ns}]")
            out += [f"{name} = {value}" for name, value in services.items()]
        return "\n".join(out) + "\n"

    def names(self):
        return [(ns, name) for ns, services in self.namespaces.items() for name in services]

    def round(self):
        """Change, add and remove TOUCH services each (one new namespace, one gone);
        returns the (namespace, name) pairs touched, removed ones included."""
        everyone = self.names()
        picked = self.rng.sample(everyone, 2 * TOUCH)
        touched = []
        for ns, name in picked[:TOUCH]:
            self.namespaces[ns][name] = self.value()
            touched.append((ns, name))
        for ns, name in picked[TOUCH:]:
            if name in self.namespaces.get(ns, {}):
                del self.namespaces[ns][name]
                touched.append((ns, name))
        gone = self.rng.choice(list(self.namespaces))
        touched += [(gone, name) for name in self.namespaces.pop(gone)]
        fresh = f"ns-{self.next_ns:04d}"
        self.next_ns += 1
        for _ in range(TOUCH):
            ns = fresh if self.rng.random() < 0.3 else self.rng.choice(list(self.namespaces))
            name = f"svc-{self.next_svc:06d}"
            self.next_svc += 1
            self.namespaces.setdefault(ns, {})[name] = self.value()
            touched.append((ns, name))
        return touched


def zone_records(port):
    """Every record of an AXFR of cluster.local but the SOA (its serial differs), as
    sorted lines: dig, for 300,000 records."""
    rc, out = run_tool(["dig", "@127.0.0.1", "-p", str(port), "+noall", "+answer",
                        "+nocookie", "cluster.local", "AXFR"], timeout=120 * SLOW)
    assert rc == 0, out[-2000:]
    lines = sorted(" ".join(line.split()).lower() for line in out.splitlines()
                   if line.strip() and not line.startswith(";"))
    assert lines, "empty transfer"
    return [line for line in lines if " soa " not in line]


def answer(s, qname, rdtype):
    r = s.ask(qname, rdtype)
    return dns.rcode.to_text(r.rcode()), sorted(rrlines(r.answer))


def ptr_name(address):
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa."


def test_reloads_of_a_large_mapping_serve_what_a_start_would(svcmapd):
    rng = random.Random(20261206)
    m = Mapping(rng)
    s = svcmapd(m.text())
    for n in range(ROUNDS):
        touched = m.round()
        outcome, new = s.reload(m.text(), timeout=60)
        assert outcome == "ok", new
        # a patch of what changed (README "Reload"), and of a patch from round 2 on
        compiled = re.search(r"reload: ok, (\d+) services, .* (\d+) compiled", new)
        assert compiled and int(compiled[2]) <= 3 * TOUCH * (n + 1) < int(compiled[1]), new
        fresh = svcmapd(m.text())
        try:
            got, want = zone_records(s.port), zone_records(fresh.port)
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            assert not missing and not extra, (
                f"round {n + 1}: the reloaded zone differs from a fresh start: "
                f"{len(missing)} records missing ({missing[:5]}), {len(extra)} extra ({extra[:5]})")
            asked = touched + rng.sample(m.names(), SAMPLE)
            for ns, name in asked:
                qname = f"{name}.{ns}.svc.cluster.local."
                for rdtype in ("A", "AAAA", "SRV"):
                    assert answer(s, qname, rdtype) == answer(fresh, qname, rdtype), (
                        f"round {n + 1}: {qname} {rdtype}")
                value = m.namespaces.get(ns, {}).get(name, "")
                for address in value.replace(":", ", ").split(", ")[:1]:
                    if address.startswith("10."):
                        assert answer(s, ptr_name(address), "PTR") == \
                            answer(fresh, ptr_name(address), "PTR"), f"round {n + 1}: {address}"
        finally:
            fresh.stop()
