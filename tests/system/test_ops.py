"""test_ops.py -- operations features: the HTTP endpoints (/health, /ready, /metrics in
CoreDNS's shapes, lameduck), the query log (CoreDNS's log plugin format, JSON, levels),
automatic reload of a changed mapping file (a Kubernetes ConfigMap mount, editors, slow
writers), systemd's notify protocol, and `svcmapd --print`.

Everything listens on 127.0.0.1 / ::1 on free ports, and every process is stopped by
PID at teardown (the conftest fixtures, or ours below built the same way).  Nothing
here sends a packet off loopback: every config without an [upstream] section gets
`servers = none` (conftest), the one with an upstream points it at a FakeUpstream on
127.0.0.1, and the addresses given to --print are only printed.

Needs Debian's `prometheus` package for `promtool check metrics` (the Prometheus
server is never started)."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import conftest
from conftest import (Server, check_answer, error_lines, free_port, ipv6_loopback_available,
                      make_query, parse, run_cli, sanitizer_report, svc, tcp_connect,
                      tcp_exchange, tcp_read_msg, socket_ports, udp_exchange)

ZONE_LABEL = "cluster.local."
X, Y, MYSQL = svc("x.a"), svc("y.a"), svc("mysql.a")

# conftest stretches its waits by SLOW when svcmapd runs under valgrind (1 otherwise).
SLOW = getattr(conftest, "SLOW", 1.0)
MARGIN = 3.0 * SLOW     # seconds of slack on top of anything timed (a shared 2-core machine)

# CoreDNS's buckets (plugin.TimeBuckets, plugin.SizeBuckets): dashboards rely on them.
DURATION_LE = [0.00025 * 2 ** k for k in range(16)]
SIZE_LE = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000]


def mapping(server="", sections="", services="x = 10.0.0.1\n"):
    """A small mapping: [server] on @PORT@ with extra lines, extra sections, namespace a."""
    return (f"# ops test mapping\n[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\n{server}\n"
            f"{sections}\n[namespace a]\n{services}")


def addresses(r, rdtype="A"):
    t = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rr in r.answer if rr.rdtype == t for rd in rr)


# --------------------------------------------------------------------------- HTTP


def http_request(port, path, method="GET", host="127.0.0.1", timeout=3.0, body=None):
    """(status, headers with lower-case names, body bytes) of one request."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def http_status(port, path, timeout=1.0):
    """The status of a GET, or None when nothing answers (refused, reset, timeout)."""
    try:
        return http_request(port, path, timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return None


def connection_refused(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def listening_tcp_ports(pid):
    """The TCP ports process pid has sockets listening on."""
    return socket_ports(pid, "tcp", state="0A")


# --------------------------------------------------------------------------- metrics

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad label set {{{text}}} at {text[pos:]!r}"
        assert m.group(1) not in labels, f"label {m.group(1)} twice in {{{text}}}"
        labels[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                    m.group(2))
        pos = m.end()
    return labels


class Metrics:
    """The Prometheus text format, parsed by hand: samples (name, labels, value), and the
    HELP/TYPE of each family."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types, self.helps = {}, {}
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                _, _, fam, typ = line.split(None, 3)
                assert fam not in self.types, f"TYPE of {fam} twice"
                self.types[fam] = typ
                continue
            if line.startswith("# HELP "):
                _, _, fam, *help_ = line.split(None, 3)
                self.helps[fam] = help_[0] if help_ else ""
                continue
            if line.startswith("#"):
                continue
            m = SAMPLE_RE.match(line)
            assert m, f"unparsable metrics line {line!r}"
            self.samples.append((m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))))

    def find(self, name, **labels):
        """[(labels, value)] of the samples of name whose labels include these."""
        return [(lb, v) for n, lb, v in self.samples
                if n == name and all(lb.get(k) == w for k, w in labels.items())]

    def get(self, name, default=None, **labels):
        """The value of the sample with exactly these labels (default if absent)."""
        got = [v for n, lb, v in self.samples if n == name and lb == labels]
        assert len(got) <= 1, f"{name}{labels} appears {len(got)} times"
        return got[0] if got else default

    def total(self, name, **labels):
        return sum(v for _, v in self.find(name, **labels))


def scrape(port):
    status, headers, body = http_request(port, "/metrics")
    assert status == 200, f"/metrics: {status} {body[:200]!r}"
    assert headers.get("content-type", "").startswith("text/plain"), headers
    return Metrics(body.decode())


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, (f"promtool check metrics exited {p.returncode}:\n{p.stdout}"
                               f"{p.stderr}\n--- the metrics:\n{text}")
    return p.stdout + p.stderr


def check_histogram(m, name, le_expected, **labels):
    """One histogram series: le values as CoreDNS's, cumulative buckets, +Inf == _count.
    Returns (count, sum)."""
    buckets = sorted(((float(lb["le"]), v) for lb, v in m.find(name + "_bucket", **labels)
                      if {k: w for k, w in lb.items() if k != "le"} == labels),
                     key=lambda b: b[0])
    assert buckets, f"no {name}_bucket{labels}"
    les = [le for le, _ in buckets]
    assert les == [float(x) for x in le_expected] + [float("inf")], (
        f"{name}{labels}: bucket boundaries {les}, expected CoreDNS's {le_expected} and +Inf")
    counts = [v for _, v in buckets]
    assert all(b >= a for a, b in zip(counts, counts[1:])), (
        f"{name}{labels}: buckets not cumulative: {counts}")
    count = m.get(name + "_count", **labels)
    total = m.get(name + "_sum", **labels)
    assert count is not None and total is not None, f"{name}{labels}: no _count or _sum"
    assert counts[-1] == count, f"{name}{labels}: +Inf bucket {counts[-1]} != _count {count}"
    return count, total


# --------------------------------------------------------------------------- processes


@pytest.fixture
def started(svcmapd_bin, tmp_path):
    """Factory like conftest's svcmapd, for Server subclasses: started(cls, config, ...).
    Every server is stopped by PID at teardown."""
    servers = []

    def start(cls, config, *, wait=True, **kw):
        for attempt in range(3):
            s = cls(svcmapd_bin, tmp_path, config, name=f"srv{len(servers) + 1}", **kw)
            servers.append(s)
            if not wait or s.wait_ready(bind_race_ok=attempt < 2) is not False:
                return s
            s.stop()
        raise AssertionError("unreachable")

    yield start
    for s in servers:
        s.stop()
    for s in servers:
        if hasattr(conftest, "server_report"):
            report = conftest.server_report(s)
        else:
            report = sanitizer_report(s.log_path.read_text(errors="replace"))
            report = report and f"sanitizer report from svcmapd ({s.config_path}):\n{report}"
        if report:
            pytest.fail(report)


class ConfigMapServer(Server):
    """svcmapd reading its file from a directory laid out as the kubelet mounts a
    ConfigMap: NAME/..TIMESTAMP/svcmapd.ini (the file), NAME/..data -> ..TIMESTAMP,
    NAME/svcmapd.ini -> ..data/svcmapd.ini; started with -c NAME/svcmapd.ini.  An update
    (write_config) is the kubelet's: a new timestamped directory, a ..data_tmp symlink
    renamed over ..data (atomic), the old directory removed."""

    def __init__(self, binary, workdir, config, *, name, **kw):
        self.generation = 0
        super().__init__(binary, workdir, config, name=f"{name}/svcmapd.ini", **kw)

    @property
    def mount(self):
        return self.config_path.parent

    def write_config(self, config):
        d = self.mount
        self.generation += 1
        new = d / f"..2026_01_01_00_00_{self.generation:02d}.{1000 + self.generation}"
        new.mkdir(parents=True)
        (new / "svcmapd.ini").write_text(self.render(config))
        data = d / "..data"
        if not data.is_symlink():
            os.symlink(new.name, data)
            os.symlink("..data/svcmapd.ini", d / "svcmapd.ini")
            return
        old = os.readlink(data)
        os.symlink(new.name, d / "..data_tmp")
        os.rename(d / "..data_tmp", data)
        shutil.rmtree(d / old)


def wait_answer(s, qname, want, timeout):
    """Poll until qname A answers exactly want (sorted list); returns the seconds it took
    or fails with the last answer."""
    timeout *= SLOW
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        r = s.ask(qname, "A", timeout=1.0)
        last = (dns.rcode.to_text(r.rcode()), addresses(r))
        if last == ("NOERROR", want):
            return time.monotonic() - t0
        time.sleep(0.05)
    pytest.fail(f"{qname} did not answer {want} within {timeout}s (last: {last}); "
                f"stderr:\n{s.log()}")


def hold_answer(s, qname, want, seconds):
    """qname A keeps answering exactly want for that many seconds."""
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        r = s.ask(qname, "A", timeout=1.0)
        got = (dns.rcode.to_text(r.rcode()), addresses(r))
        assert got == ("NOERROR", want), (
            f"{qname}: expected {want}, got {got}; stderr:\n{s.log()}")
        time.sleep(0.05)


# =========================================================================== 1. HTTP


HTTP_SECTION = "[http]\n{lines}\n"


def test_http_endpoints_on_separate_ports(svcmapd):
    p1, p2, p3 = free_port(), free_port(), free_port()
    s = svcmapd(mapping(sections=HTTP_SECTION.format(
        lines=f"health = 127.0.0.1:{p1}\nready = 127.0.0.1:{p2}\nmetrics = 127.0.0.1:{p3}")))
    assert len({p1, p2, p3, s.port}) == 4

    for port, path in ((p1, "/health"), (p2, "/ready")):
        status, headers, body = http_request(port, path)
        assert (status, body) == (200, b"OK"), f"{path}: {status} {body!r}"
        assert headers.get("content-type", "").startswith("text/plain"), headers
        # HEAD: the same status and headers, no body
        status, headers, body = http_request(port, path, "HEAD")
        assert (status, body) == (200, b""), f"HEAD {path}: {status} {body!r}"
        assert headers.get("content-type", "").startswith("text/plain"), headers
        # POST is refused (405 Method Not Allowed or 501 Not Implemented)
        status, _, body = http_request(port, path, "POST", body=b"x")
        assert status in (405, 501), f"POST {path}: expected 405/501, got {status} {body!r}"

    status, headers, body = http_request(p3, "/metrics")
    assert status == 200, f"/metrics: {status} {body[:200]!r}"
    assert headers.get("content-type", "").startswith("text/plain"), headers
    assert b"# TYPE coredns_dns_requests_total counter" in body, body[:500]
    status, _, body = http_request(p3, "/metrics", "HEAD")
    assert (status, body) == (200, b""), f"HEAD /metrics: {status}"

    # each endpoint answers only on its own address; anything else is 404
    for port, path in ((p1, "/ready"), (p1, "/metrics"), (p2, "/health"), (p2, "/metrics"),
                       (p3, "/health"), (p3, "/ready"), (p1, "/"), (p1, "/healthz"),
                       (p2, "/ready/x"), (p3, "/metric"), (p1, "/HEALTH")):
        status, _, body = http_request(port, path)
        assert status == 404, f"GET {path} on the port of another endpoint: {status} {body!r}"

    # the process listens for TCP on the DNS port and the three HTTP ports, nothing else
    assert listening_tcp_ports(s.proc.pid) == {s.port, p1, p2, p3}


def test_http_endpoints_on_one_port(svcmapd):
    p = free_port()
    s = svcmapd(mapping(sections=HTTP_SECTION.format(
        lines=f"health = 127.0.0.1:{p}\nready = 127.0.0.1:{p}\nmetrics = 127.0.0.1:{p}")))
    assert http_request(p, "/health")[::2] == (200, b"OK")
    assert http_request(p, "/ready")[::2] == (200, b"OK")
    status, _, body = http_request(p, "/metrics")
    assert status == 200 and b"svcmapd_zone_serial" in body, (status, body[:300])
    assert http_request(p, "/nothing")[0] == 404
    assert listening_tcp_ports(s.proc.pid) == {s.port, p}


def test_http_off_by_default(svcmapd):
    """No [http] section: no HTTP listener at all (the only TCP listener is DNS's)."""
    unconfigured = free_port()
    s = svcmapd(mapping())
    assert listening_tcp_ports(s.proc.pid) == {s.port}, "svcmapd listens on more than DNS"
    assert connection_refused(unconfigured)
    assert "http:" not in s.log(), s.log()


def big_mapping(path_ports, services=300_000, per_ns=1000):
    health, ready = path_ports
    out = [f"[server]\nlisten = 127.0.0.1:@PORT@\n\n[http]\nhealth = 127.0.0.1:{health}\n"
           f"ready = 127.0.0.1:{ready}\n"]
    for n in range(services // per_ns):
        out.append(f"[namespace ns{n}]\n")
        out.append("".join(f"s{i} = 10.{n // 256}.{n % 256}.{i % 250 + 1}\n"
                           for i in range(per_ns)))
    return "".join(out)


def test_ready_only_once_the_mapping_is_loaded(svcmapd):
    """300 000 services take a moment to compile: /health is 200 from the start while
    /ready is 503 until the mapping is loaded, then 200, and then DNS answers."""
    ph, pr = free_port(), free_port()
    s = svcmapd(big_mapping((ph, pr)), wait=False)
    samples = []            # (t, /health status, /ready status)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30 * SLOW:
        if s.proc.poll() is not None:
            pytest.fail(f"svcmapd exited ({s.proc.returncode}); stderr:\n{s.log()}")
        h, r = http_status(ph, "/health"), http_status(pr, "/ready")
        samples.append((round(time.monotonic() - t0, 3), h, r))
        if r == 200:
            break
    else:
        pytest.fail(f"/ready never answered 200 in 30s; last samples {samples[-5:]}; "
                    f"stderr:\n{s.log()}")
    # DNS answers now that /ready is 200
    r = s.ask(svc("s999.ns299"), "A", timeout=2.0)
    check_answer(r, [f"{svc('s999.ns299')} 5 IN A 10.1.43.250"])
    changes = [samples[0]] + [b for a, b in zip(samples, samples[1:]) if a[1:] != b[1:]]
    first_ready = next(i for i, x in enumerate(samples) if x[2] == 200)
    assert any(x[2] == 503 for x in samples[:first_ready]), (
        f"/ready never answered 503 before its first 200 (transitions: {changes})")
    assert any(x[1] == 200 and x[2] == 503 for x in samples), (
        f"never saw /health 200 while /ready 503 (transitions: {changes})")
    assert all(x[1] in (None, 200) for x in samples), f"/health not 200: {changes}"
    # once ready, it stays ready
    assert http_request(pr, "/ready")[::2] == (200, b"OK")
    assert http_request(ph, "/health")[::2] == (200, b"OK")


def test_lameduck(svcmapd):
    """lameduck = 2: after SIGTERM /ready is 503, /health 200, DNS still answers (UDP and
    TCP), and the process exits with status 0 once the 2 s are over."""
    ph, pr = free_port(), free_port()
    s = svcmapd(mapping(sections=HTTP_SECTION.format(
        lines=f"health = 127.0.0.1:{ph}\nready = 127.0.0.1:{pr}\nlameduck = 2")))
    assert http_request(pr, "/ready")[::2] == (200, b"OK")
    t0 = time.monotonic()
    os.kill(s.proc.pid, signal.SIGTERM)
    # /ready goes 503 (the signal is handled asynchronously: poll briefly)
    while True:
        status, _, body = http_request(pr, "/ready")
        if status == 503:
            break
        assert status == 200 and time.monotonic() - t0 < 1.0, (
            f"/ready still {status} {time.monotonic() - t0:.2f}s after SIGTERM")
        time.sleep(0.02)
    assert body != b"OK", body
    rounds = 0
    while rounds == 0 or time.monotonic() - t0 < 1.3:     # well inside the 2 s
        assert http_request(ph, "/health")[::2] == (200, b"OK"), "/health failed in lameduck"
        check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])
        check_answer(s.ask(X, "A", tcp=True), [f"{X} 5 IN A 10.0.0.1"])
        assert http_request(pr, "/ready")[0] == 503
        rounds += 1
        time.sleep(0.2)
    assert s.proc.poll() is None, "svcmapd exited during its lameduck period"
    try:
        rc = s.proc.wait(2 + MARGIN - (time.monotonic() - t0))
    except subprocess.TimeoutExpired:
        pytest.fail(f"svcmapd still running {2 + MARGIN}s after SIGTERM with lameduck = 2; "
                    f"stderr:\n{s.log()}")
    took = time.monotonic() - t0
    assert rc == 0, f"exit status {rc}; stderr:\n{s.log()}"
    assert took >= 1.9, f"exited {took:.2f}s after SIGTERM, before the 2 s of lameduck"
    assert connection_refused(ph) and connection_refused(s.port), "sockets left open after exit"


def test_no_lameduck_stops_at_once(svcmapd):
    ph, pr = free_port(), free_port()
    s = svcmapd(mapping(sections=HTTP_SECTION.format(
        lines=f"health = 127.0.0.1:{ph}\nready = 127.0.0.1:{pr}")))
    assert http_request(pr, "/ready")[::2] == (200, b"OK")
    t0 = time.monotonic()
    os.kill(s.proc.pid, signal.SIGTERM)
    try:
        rc = s.proc.wait(MARGIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"svcmapd still running {MARGIN}s after SIGTERM without lameduck")
    took = time.monotonic() - t0
    assert rc == 0, f"exit status {rc}; stderr:\n{s.log()}"
    assert took < 1.5 * SLOW, f"stopping took {took:.2f}s without lameduck"
    assert "lameduck mode" not in s.log() and "Terminated: stopping" in s.log(), s.log()


# =========================================================================== 2. /metrics


def test_metrics_query_counters(svcmapd):
    pm = free_port()
    v6 = ipv6_loopback_available()
    listen = "127.0.0.1:@PORT@" + (", [::1]:@PORT6@" if v6 else "")
    s = svcmapd(f"[server]\nlisten = {listen}\nttl = 5\n\n[http]\nmetrics = 127.0.0.1:{pm}\n\n"
                f"[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2, 2001:db8::2\n", ipv6=v6)
    srv4 = f"dns://127.0.0.1:{s.port}"
    zone4 = dict(server=srv4, zone=ZONE_LABEL, view="")
    drop4 = dict(server=srv4, zone="dropped", view="")

    m0 = scrape(pm)
    promtool_check(m0.text)
    for fam, typ in (("coredns_dns_requests_total", "counter"),
                     ("coredns_dns_responses_total", "counter"),
                     ("coredns_dns_request_duration_seconds", "histogram"),
                     ("coredns_dns_request_size_bytes", "histogram"),
                     ("coredns_dns_response_size_bytes", "histogram"),
                     ("coredns_build_info", "gauge")):
        assert m0.types.get(fam) == typ, f"# TYPE {fam}: expected {typ}, got {m0.types.get(fam)}"
    assert m0.get("coredns_dns_requests_total", 0, **zone4, proto="udp", family="1",
                  type="A") == 0

    for _ in range(3):
        check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])
    tq = make_query(X, "A", edns=0)
    tcp_reply = tcp_exchange(tq.to_wire(), s.port)
    assert parse(tcp_reply).answer, "no TCP answer"
    nx = s.ask(svc("nope.a"), "TXT")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    refused = s.ask(".", "NS")
    assert refused.rcode() == dns.rcode.REFUSED
    if v6:
        r6 = parse(udp_exchange(make_query(Y, "AAAA").to_wire(), s.port6, "::1"))
        assert [rd.to_text() for rr in r6.answer for rd in rr] == ["2001:db8::2"], r6

    m = scrape(pm)
    text = m.text
    promtool_check(text)
    req = "coredns_dns_requests_total"
    assert m.get(req, **zone4, proto="udp", family="1", type="A") == 3, (
        f"udp A requests: expected 3; {[x for x in m.find(req)]}")
    assert m.get(req, **zone4, proto="tcp", family="1", type="A") == 1, m.find(req)
    assert m.get(req, **zone4, proto="udp", family="1", type="TXT") == 1, m.find(req)
    assert m.get(req, **drop4, proto="udp", family="1", type="NS") == 1, (
        f"the REFUSED `. NS` belongs to zone=\"dropped\": {m.find(req)}")
    assert m.total(req, server=srv4, zone=ZONE_LABEL, type="NS") == 0
    resp = "coredns_dns_responses_total"
    assert m.total(resp, **zone4, rcode="NXDOMAIN") == 1, m.find(resp)
    assert m.total(resp, **drop4, rcode="REFUSED") == 1, m.find(resp)
    assert m.total(resp, server=srv4, zone=ZONE_LABEL, rcode="REFUSED") == 0, m.find(resp)
    for lb, _ in m.find(resp):
        assert set(lb) == {"server", "zone", "view", "rcode", "plugin"}, lb
    for lb, _ in m.find(req):
        assert set(lb) == {"server", "zone", "view", "proto", "family", "type"}, lb
    noerror = m.total(resp, **zone4, rcode="NOERROR") - m0.total(resp, **zone4, rcode="NOERROR")
    assert noerror == 4, f"NOERROR in the zone: 3 UDP + 1 TCP A, got +{noerror}"
    if v6:
        zone6 = dict(server=f"dns://[::1]:{s.port6}", zone=ZONE_LABEL, view="")
        assert m.get(req, **zone6, proto="udp", family="2", type="AAAA") == 1, m.find(req)
        assert m.total(req, family="2") == 1, m.find(req)

    # the duration histogram counts every answered query, in its cell
    dur = "coredns_dns_request_duration_seconds"
    count4, sum4 = check_histogram(m, dur, DURATION_LE, **zone4)
    count0 = m0.get(dur + "_count", 0, **zone4)
    assert count4 - count0 == 5, f"duration _count: +{count4 - count0}, expected 5 in-zone"
    assert count4 == m.total(resp, **zone4) == m.total(req, **zone4), (
        "duration _count, responses and requests of the zone disagree")
    assert 0 <= sum4 < count4, f"duration _sum {sum4}s for {count4} queries on loopback"
    assert check_histogram(m, dur, DURATION_LE, **drop4)[0] == 1
    if v6:
        assert check_histogram(m, dur, DURATION_LE, **zone6)[0] == 1

    # size histograms per proto: the TCP ones hold exactly our one query and reply
    for name in ("coredns_dns_request_size_bytes", "coredns_dns_response_size_bytes"):
        for proto in ("udp", "tcp"):
            check_histogram(m, name, SIZE_LE, **zone4, proto=proto)
    c, total = check_histogram(m, "coredns_dns_request_size_bytes", SIZE_LE, **zone4,
                               proto="tcp")
    assert (c, total) == (1, len(tq.to_wire())), f"TCP request sizes: {c} queries, {total} B"
    c, total = check_histogram(m, "coredns_dns_response_size_bytes", SIZE_LE, **zone4,
                               proto="tcp")
    assert (c, total) == (1, len(tcp_reply)), f"TCP response sizes: {c} replies, {total} B"
    b = dict((float(lb["le"]), v) for lb, v in m.find("coredns_dns_response_size_bytes_bucket",
                                                       **zone4, proto="tcp"))
    want_le = min(le for le in SIZE_LE if le >= len(tcp_reply))
    assert b[want_le] == 1 and all(v == 0 for le, v in b.items() if le < want_le), (
        f"a {len(tcp_reply)}-byte reply belongs in bucket le={want_le}: {b}")

    # counters move as queries arrive
    s.ask(X, "A")
    m2 = scrape(pm)
    assert m2.get(req, **zone4, proto="udp", family="1", type="A") == 4
    assert m2.get(dur + "_count", **zone4) == count4 + 1


def test_metrics_zone_gauges_and_reloads(svcmapd):
    pm = free_port()
    services = "x = 10.0.0.1\ny = 10.0.0.2, 10.0.0.3\nweb = web.example.com\nz = 10.0.0.4:80\n"
    sections = HTTP_SECTION.format(lines=f"metrics = 127.0.0.1:{pm}")
    s = svcmapd(mapping(sections=sections, services=services))
    rc, out, _ = run_cli(["-t", "-c", str(s.config_path)])
    assert rc == 0, out
    services_n, records_n = map(int, re.search(r"(\d+) services, (\d+) records", out).groups())
    assert services_n == 4

    m = scrape(pm)
    assert m.get("svcmapd_zone_serial") == s.serial()
    assert m.get("svcmapd_services") == 4
    assert m.get("svcmapd_records") == records_n
    assert m.get("svcmapd_reloads_total", result="ok") == 0
    assert m.get("svcmapd_reloads_total", result="failed") == 0
    t_start = m.get("svcmapd_last_reload_success_timestamp_seconds")
    assert abs(t_start - time.time()) < 30, f"last reload timestamp {t_start} is not now"
    for fam, typ in (("svcmapd_zone_serial", "gauge"), ("svcmapd_services", "gauge"),
                     ("svcmapd_records", "gauge"), ("svcmapd_reloads_total", "counter"),
                     ("svcmapd_last_reload_success_timestamp_seconds", "gauge"),
                     ("svcmapd_tcp_connections", "gauge"),
                     ("svcmapd_tcp_connections_refused_total", "counter")):
        assert m.types.get(fam) == typ, f"# TYPE {fam}: expected {typ}, got {m.types.get(fam)}"

    time.sleep(1.1)     # the timestamp has whole seconds
    outcome, new = s.reload(mapping(sections=sections, services=services + "more = 10.0.0.9\n"))
    assert outcome == "ok", new
    m = scrape(pm)
    promtool_check(m.text)
    assert m.get("svcmapd_reloads_total", result="ok") == 1
    assert m.get("svcmapd_reloads_total", result="failed") == 0
    t_ok = m.get("svcmapd_last_reload_success_timestamp_seconds")
    assert t_ok > t_start, f"last reload timestamp did not move: {t_start} -> {t_ok}"
    assert m.get("svcmapd_zone_serial") == s.serial()
    assert m.get("svcmapd_services") == 5

    outcome, new = s.reload(mapping(sections=sections, services="x = 10.0.0.300\n"))
    assert outcome == "failed", new
    m = scrape(pm)
    assert m.get("svcmapd_reloads_total", result="ok") == 1
    assert m.get("svcmapd_reloads_total", result="failed") == 1
    assert m.get("svcmapd_last_reload_success_timestamp_seconds") == t_ok
    assert m.get("svcmapd_zone_serial") == s.serial()
    assert m.get("svcmapd_services") == 5


def wait_metric(port, name, want, timeout=3.0, **labels):
    timeout *= SLOW
    t0 = time.monotonic()
    while True:
        v = scrape(port).get(name, **labels)
        if v == want:
            return
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{name}{labels}: expected {want}, still {v} after {timeout}s")
        time.sleep(0.05)


def test_metrics_tcp_connections(svcmapd):
    pm = free_port()
    s = svcmapd(mapping(server="tcp-max-connections = 1",
                        sections=HTTP_SECTION.format(lines=f"metrics = 127.0.0.1:{pm}")))
    m = scrape(pm)
    assert m.get("svcmapd_tcp_connections") == 0
    assert m.get("svcmapd_tcp_connections_refused_total") == 0
    with tcp_connect(s.port) as c1:
        q = make_query(X, "A").to_wire()
        c1.sendall(struct.pack("!H", len(q)) + q)
        assert parse(tcp_read_msg(c1)).answer
        assert scrape(pm).get("svcmapd_tcp_connections") == 1
        with tcp_connect(s.port) as c2:
            # beyond tcp-max-connections: closed at once
            c2.settimeout(3)
            try:
                closed = c2.recv(1) == b""
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                closed = False
            assert closed, "the second connection was not closed at tcp-max-connections = 1"
            wait_metric(pm, "svcmapd_tcp_connections_refused_total", 1)
            assert scrape(pm).get("svcmapd_tcp_connections") == 1
    wait_metric(pm, "svcmapd_tcp_connections", 0)


def test_metrics_upstream_counters(svcmapd, upstream, udp_client):
    up = upstream()
    up.add("ext.example.com.", "A", "192.0.2.1", ttl=300)
    up.add("bad.example.com.", "A", "192.0.2.2", ttl=300)
    up.rule("bad.example.com.", mode="servfail")
    up.add("stale.example.com.", "A", "192.0.2.3", ttl=1)
    pm = free_port()
    s = svcmapd(mapping(sections=HTTP_SECTION.format(lines=f"metrics = 127.0.0.1:{pm}") +
                        f"\n[upstream]\nservers = {up.addr}\ntimeout = 2\nnegative-ttl = 0\n",
                        services="ext = ext.example.com\nbad = bad.example.com\n"
                                 "st = stale.example.com\n"))
    names = ("hits", "misses", "failures", "stale", "queries")

    def counters():
        m = scrape(pm)
        got = {}
        for n in names:
            fam = {"hits": "svcmapd_upstream_cache_hits_total",
                   "misses": "svcmapd_upstream_cache_misses_total",
                   "failures": "svcmapd_upstream_failures_total",
                   "stale": "svcmapd_upstream_stale_answers_total",
                   "queries": "svcmapd_upstream_queries_total"}[n]
            assert m.types.get(fam) == "counter", fam
            got[n] = m.get(fam)
        return got

    def delta(before, after):
        return {n: after[n] - before[n] for n in names}

    c = udp_client(s.port)      # one socket: one worker, one cache
    m0 = counters()
    assert m0 == dict.fromkeys(names, 0), m0

    r = c.ask(svc("ext.a"), "A")
    assert "192.0.2.1" in addresses(r), r
    m1 = counters()
    first = delta(m0, m1)
    hits_of_a_miss = first.pop("hits")      # checked last
    assert first == dict(misses=1, failures=0, stale=0, queries=1), first
    r = c.ask(svc("ext.a"), "A")
    assert "192.0.2.1" in addresses(r), r
    m2 = counters()
    assert delta(m1, m2) == dict(hits=1, misses=0, failures=0, stale=0, queries=0), m2

    n_up = up.count()
    r = c.ask(svc("bad.a"), "A")
    assert addresses(r) == [], r
    m3 = counters()
    d = delta(m2, m3)
    assert (d["misses"], d["failures"], d["hits"], d["stale"]) == (1, 1, 0, 0), d
    assert d["queries"] == up.count() - n_up >= 1, (d, up.queries())

    r = c.ask(svc("st.a"), "A")
    assert "192.0.2.3" in addresses(r), r
    m4 = counters()
    time.sleep(2.2)                         # past its TTL of 1 s (whole-second clock)
    up.rule("stale.example.com.", mode="servfail")
    up.replace("stale.example.com.", "A", "192.0.2.4", ttl=1)
    r = c.ask(svc("st.a"), "A")             # the refresh fails: the expired record, stale
    assert addresses(r) == ["192.0.2.3"], r
    r = c.ask(svc("st.a"), "A")             # right after: stale at once
    assert addresses(r) == ["192.0.2.3"], r
    m5 = counters()
    d = delta(m4, m5)
    assert d["stale"] == 2 and d["failures"] == 1 and d["hits"] == 0, d
    assert m5["queries"] == up.count(), (m5, up.queries())
    # A query is a cache hit or a miss, never both (hits / (hits + misses) is the hit
    # ratio, as with CoreDNS's cache metrics): the query that waited for the lookup is
    # not also a hit when it is answered.
    assert hits_of_a_miss == 0, (
        f"the first query for a target counted as a miss and as {hits_of_a_miss:g} hit(s)")


# =========================================================================== 3. query log

QLOG_RE = re.compile(
    r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \[INFO\] (\S+):(\d+) - (\d+) '
    r'"(\S+) (\S+) (\S+) (udp|tcp) (\d+) (true|false) (\d+)" (\S+) (\S+) (\d+) (\d+\.\d{9})s$')


def sent_udp(port, qname, rdtype, host="127.0.0.1", **kw):
    """Send one query over UDP from our own socket; (query wire, reply wire, our port)."""
    q = make_query(qname, rdtype, **kw)
    qw = q.to_wire()
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect((host, port))
        sock.send(qw)
        while True:
            w = sock.recv(65535)
            if w[:2] == qw[:2]:
                break
        return qw, w, sock.getsockname()[1]


def sent_tcp(port, qname, rdtype, **kw):
    q = make_query(qname, rdtype, **kw)
    qw = q.to_wire()
    with tcp_connect(port) as sock:
        sport = sock.getsockname()[1]
        sock.sendall(struct.pack("!H", len(qw)) + qw)
        w = tcp_read_msg(sock)
    return qw, w, sport


def log_queries_sent(s, host6=None):
    """The queries the query-log tests send, with what their log line must say:
    [(remote, port, id, type, class, name, proto, size, do, bufsize, rcode, flags, rsize)]."""
    out = []

    def note(host, proto, qw, w, sport, qid, qtype, qclass, name, do, bufsize, rcode, flags):
        assert struct.unpack("!H", w[:2])[0] == qid
        out.append((host, sport, qid, qtype, qclass, name, proto, len(qw), do, bufsize,
                    rcode, flags, len(w)))

    qw, w, p = sent_udp(s.port, "MySQL.A.svc.Cluster.Local.", "A", qid=4321)
    note("127.0.0.1", "udp", qw, w, p, 4321, "A", "IN", "MySQL.A.svc.Cluster.Local.", False,
         512, "NOERROR", "qr,aa")
    qw, w, p = sent_udp(s.port, X, "AAAA", qid=777, rd=True, edns=0, payload=4096, do=True)
    note("127.0.0.1", "udp", qw, w, p, 777, "AAAA", "IN", X, True, 4096, "NOERROR", "qr,aa,rd")
    qw, w, p = sent_tcp(s.port, svc("nope.a"), "A", qid=999, edns=0, payload=1232)
    note("127.0.0.1", "tcp", qw, w, p, 999, "A", "IN", svc("nope.a"), False, 1232, "NXDOMAIN",
         "qr,aa")
    qw, w, p = sent_udp(s.port, ".", "NS", qid=1000, rd=True)
    note("127.0.0.1", "udp", qw, w, p, 1000, "NS", "IN", ".", False, 512, "REFUSED", "qr,rd")
    qw, w, p = sent_udp(s.port, "version.bind.", "TXT", qid=1001, qclass="CH")
    note("127.0.0.1", "udp", qw, w, p, 1001, "TXT", "CH", "version.bind.", False, 512,
         "REFUSED", "qr")
    if host6:
        qw, w, p = sent_udp(s.port6, svc("mysql.a"), "A", host="::1", qid=2002)
        note("::1", "udp", qw, w, p, 2002, "A", "IN", svc("mysql.a"), False, 512, "NOERROR",
             "qr,aa")
    return out


def wait_lines(s, pattern, count, timeout=5.0):
    timeout *= SLOW
    t0 = time.monotonic()
    while True:
        lines = [ln for ln in s.log().splitlines() if re.search(pattern, ln)]
        if len(lines) >= count or time.monotonic() - t0 > timeout:
            return lines
        time.sleep(0.02)


QLOG_MAPPING = """[server]
listen = {listen}
ttl = 5

[log]
{log}

[namespace a]
mysql = 10.0.0.7
x = 10.0.0.1
"""


def test_query_log_text(svcmapd):
    v6 = ipv6_loopback_available()
    listen = "127.0.0.1:@PORT@" + (", [::1]:@PORT6@" if v6 else "")
    s = svcmapd(QLOG_MAPPING.format(listen=listen, log="queries = yes"), ipv6=v6)
    sent = log_queries_sent(s, host6=v6)
    for (host, sport, qid, qtype, qclass, name, proto, size, do, bufsize, rcode, flags,
         rsize) in sent:
        remote = f"[{host}]" if ":" in host else host
        lines = wait_lines(s, rf"\[INFO\] {re.escape(remote)}:{sport} - {qid} ", 1)
        assert len(lines) == 1, (f"expected one log line for the query from {remote}:{sport} "
                                 f"id {qid}, got {lines}; stderr:\n{s.log()}")
        m = QLOG_RE.match(lines[0])
        assert m, f"not CoreDNS's log format: {lines[0]!r}"
        got = m.groups()[1:]
        want = (remote, str(sport), str(qid), qtype, qclass, name, proto, str(size),
                "true" if do else "false", str(bufsize), rcode, flags, str(rsize))
        assert got[:-1] == want, (f"query log line fields:\n  expected {want}\n  got      "
                                  f"{got[:-1]}\n  line: {lines[0]!r}")
        assert 0 <= float(got[-1]) < 1.0, f"duration {got[-1]}s: {lines[0]!r}"


def test_query_log_json(svcmapd):
    v6 = ipv6_loopback_available()
    listen = "127.0.0.1:@PORT@" + (", [::1]:@PORT6@" if v6 else "")
    s = svcmapd(QLOG_MAPPING.format(listen=listen, log="queries = yes\nformat = json"),
                ipv6=v6)
    sent = log_queries_sent(s, host6=v6)
    wait_lines(s, r'"id":2002' if v6 else r'"id":1001', 1)
    objs = []
    for line in s.log().splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}")
        assert isinstance(o, dict), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o.get("time", "")), line
        assert o.get("level") in ("debug", "info", "warning", "error"), line
        objs.append((o, line))
    assert any("listening on" in o.get("msg", "") for o, _ in objs), "no start-up line"
    for o, line in objs:
        if o.get("type") != "query":
            assert isinstance(o.get("msg"), str) and o["msg"], f"no msg: {line!r}"
    queries = [o for o, _ in objs if o.get("type") == "query"]
    for (host, sport, qid, qtype, qclass, name, proto, size, do, bufsize, rcode, flags,
         rsize) in sent:
        mine = [o for o in queries if o.get("id") == qid and o.get("port") == sport]
        assert len(mine) == 1, f"expected one JSON line for id {qid} port {sport}: {mine}"
        o = mine[0]
        want = dict(remote=host, port=sport, id=qid, qtype=qtype, qclass=qclass, name=name,
                    proto=proto, size=size, do=do, bufsize=bufsize, rcode=rcode, rflags=flags,
                    rsize=rsize, level="info")
        got = {k: o.get(k) for k in want}
        assert got == want, f"JSON query line:\n  expected {want}\n  got      {got}"
        assert type(o["do"]) is bool and type(o["port"]) is int and type(o["size"]) is int
        assert isinstance(o.get("duration"), float) and 0 <= o["duration"] < 1.0, o
    # every line carries a msg, query lines too (log pipelines key on it)
    missing = [line for o, line in objs if "msg" not in o]
    assert not missing, f"JSON lines without \"msg\": {missing[:3]}"


def test_no_query_log_by_default(svcmapd):
    s = svcmapd(QLOG_MAPPING.format(listen="127.0.0.1:@PORT@", log=""))
    log_queries_sent(s)
    outcome, new = s.reload()       # a line after the queries: they were logged by now
    assert outcome == "ok", new
    assert not [ln for ln in s.log().splitlines() if re.search(r' - \d+ "', ln)], s.log()
    assert not [ln for ln in s.log().splitlines() if "version.bind" in ln or "nope" in ln]


def test_log_level_warning(svcmapd):
    """level = warning: no info lines (listening on..., reload: ok), but warnings and errors
    (a bad reload's FILE:LINE lines)."""
    s = svcmapd(QLOG_MAPPING.format(listen="127.0.0.1:@PORT@", log="level = warning"))
    log = s.log()
    assert "listening on" not in log and "[INFO]" not in log, log
    bad = QLOG_MAPPING.format(listen="127.0.0.1:@PORT@", log="level = warning").replace(
        "x = 10.0.0.1", "x = 10.0.0.300")
    s.write_config(bad)
    before = s.log()
    os.kill(s.proc.pid, signal.SIGHUP)
    log = s.wait_log("reload: failed")
    new = log[len(before):]
    assert error_lines(new, s.config_path) == [s.line_of("10.0.0.300")], new
    assert "[ERROR]" in new, new
    # a good reload that also changes `listen` (a warning: it needs a restart)
    other = free_port()
    good = QLOG_MAPPING.format(listen=f"127.0.0.1:@PORT@, 127.0.0.1:{other}",
                               log="level = warning").replace("10.0.0.1", "10.0.0.2")
    s.write_config(good)
    before = s.log()
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_answer(s, X, ["10.0.0.2"], 5)
    log = s.wait_log("'listen' changed")
    new = log[len(before):]
    assert "[WARNING]" in new, new
    assert "reload: ok" not in new and "[INFO]" not in new, new


def test_query_log_whatever_the_level(svcmapd):
    """queries = yes logs queries at level = warning (and error) too: the level filters
    event lines, the switch asks for query lines (as CoreDNS's log plugin does)."""
    for level in ("warning", "error"):
        s = svcmapd(QLOG_MAPPING.format(listen="127.0.0.1:@PORT@",
                                        log=f"level = {level}\nqueries = yes"))
        _, _, port = sent_udp(s.port, X, "A", qid=4242)
        lines = wait_lines(s, rf":{port} - 4242 ", 1)
        assert len(lines) == 1 and QLOG_RE.match(lines[0]), f"level = {level}:\n{s.log()}"
        assert "listening on" not in s.log(), s.log()


def test_reload_changes_log_settings(svcmapd):
    """A reload applies [log] at once: its own `reload: ok` line is already in the new
    format, and so is everything after it."""
    def conf(log, listen="127.0.0.1:@PORT@", x="10.0.0.1"):
        return QLOG_MAPPING.format(listen=listen, log=log).replace("10.0.0.1", x)

    s = svcmapd(conf(""))
    _, _, p11 = sent_udp(s.port, X, "A", qid=11)
    outcome, new = s.reload(conf("queries = yes\nformat = json"))
    assert outcome == "ok", new
    line = [ln for ln in new.splitlines() if "reload: ok" in ln]
    assert len(line) == 1 and json.loads(line[0])["msg"].startswith("reload: ok"), new
    _, _, p12 = sent_udp(s.port, X, "A", qid=12)
    lines = wait_lines(s, rf'"port":{p12},"id":12,', 1)
    assert len(lines) == 1 and json.loads(lines[0])["type"] == "query", lines
    assert not [ln for ln in s.log().splitlines() if f":{p11} - 11 " in ln], s.log()
    # back to text, warnings only, no queries
    s.write_config(conf("level = warning", x="10.0.0.5"))
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_answer(s, X, ["10.0.0.5"], 5)
    before = s.log()
    _, _, p13 = sent_udp(s.port, X, "A", qid=13)
    os.kill(s.proc.pid, signal.SIGHUP)          # unchanged file: an info line, not shown
    time.sleep(0.5)
    assert s.log() == before, f"logged at level warning:\n{s.log()[len(before):]}"
    # an error is shown, as a text line
    s.write_config(conf("level = warning", x="10.0.0.300"))
    os.kill(s.proc.pid, signal.SIGHUP)
    new = s.wait_log("reload: failed")[len(before):].splitlines()
    assert new and all(re.match(r"^\d{4}-\S+Z \[ERROR\] ", ln) for ln in new), (
        f"expected text [ERROR] lines only: {new}")
    assert error_lines("\n".join(new), s.config_path) == [s.line_of("10.0.0.300")], new


# =========================================================================== 4. auto reload


# [upstream] is written out (not appended by conftest) so that the first half of the file
# in the slow-writer test has it too.
AUTO = mapping(server="reload = 1s", sections="[upstream]\nservers = none\n",
               services="x = 10.0.0.1\nlate = 10.0.0.50\n")


def test_auto_reload_configmap_swap(started):
    s = started(ConfigMapServer, AUTO)
    assert (s.mount / "..data").is_symlink() and (s.mount / "svcmapd.ini").is_symlink()
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])
    serial = s.serial()
    s.write_config(AUTO.replace("10.0.0.1", "10.0.0.2"))
    took = wait_answer(s, X, ["10.0.0.2"], 10)
    assert took <= 5.0 * SLOW, f"the swapped ConfigMap was picked up after {took:.1f}s"
    log = s.wait_log("reload: ok")
    assert log.count("reload: ok") == 1, log
    assert f"reload: {s.config_path} changed" in log, log
    assert s.serial() > serial
    # and the next update too (the watch goes on after a reload)
    s.write_config(AUTO.replace("10.0.0.1", "10.0.0.3"))
    wait_answer(s, X, ["10.0.0.3"], 10)
    assert s.wait_log("reload: ok", 2).count("reload: ok") == 2


def test_auto_reload_invalid_swap_keeps_old(started):
    """A swap to an invalid file: the old mapping keeps serving, the FILE:LINE error is
    logged once (not at every look), and the watch goes on: the next valid file is
    taken."""
    s = started(ConfigMapServer, AUTO)
    s.write_config(AUTO.replace("x = 10.0.0.1", "x = 10.0.0.300"))
    bad_line = s.line_of("10.0.0.300")
    s.wait_log("reload: failed", timeout=10)
    hold_answer(s, X, ["10.0.0.1"], 3.5)        # >= 3 more looks at the file
    log = s.log()
    assert error_lines(log, s.config_path) == [bad_line], (
        f"the FILE:LINE error should be logged once, not at every look:\n{log}")
    assert log.count("reload: failed") == 1, log
    assert "reload: ok" not in log, log
    # a valid file after the bad one is taken
    s.write_config(AUTO.replace("10.0.0.1", "10.0.0.4"))
    took = wait_answer(s, X, ["10.0.0.4"], 10)
    assert took <= 5.0 * SLOW, f"picked up after {took:.1f}s"


def test_auto_reload_editor_rename(svcmapd):
    """An editor writes a new file and renames it over the old (Server.write_config)."""
    s = svcmapd(AUTO)
    s.write_config(AUTO.replace("10.0.0.1", "10.0.0.2"))
    took = wait_answer(s, X, ["10.0.0.2"], 10)
    assert took <= 5.0 * SLOW, f"picked up after {took:.1f}s"
    assert "reload: ok" in s.log()


def test_auto_reload_never_loads_a_half_written_file(svcmapd):
    """The file rewritten in place, slowly: the first half is itself a valid mapping, but
    without `late`.  svcmapd must wait for the file to hold still: `late` never goes
    NXDOMAIN, and every load has all 2 services."""
    s = svcmapd(AUTO)
    stop = threading.Event()
    seen = []

    def watch():
        while not stop.is_set():
            w = udp_exchange(make_query(svc("late.a"), "A").to_wire(), s.port, timeout=1.0)
            if w is not None:
                r = parse(w)
                seen.append((time.monotonic(), dns.rcode.to_text(r.rcode()), addresses(r)))
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        for i in range(2, 6):
            full = s.render(AUTO.replace("10.0.0.1", f"10.0.0.{i}"))
            cut = full.index("late =")
            half, rest = full[:cut], full[cut:]
            with open(s.config_path, "w") as f:
                f.write(half)
                f.flush()
                time.sleep(0.3)
                f.write(rest)
            time.sleep(0.35)
        wait_answer(s, X, ["10.0.0.5"], 10)
        time.sleep(1.5)
    finally:
        stop.set()
        t.join(5)
    bad = [x for x in seen if x[1:] != ("NOERROR", ["10.0.0.50"])]
    assert not bad, (f"`late` answered otherwise than 10.0.0.50 {len(bad)} times of {len(seen)} "
                     f"(a half-written file was loaded), first {bad[:3]}; stderr:\n{s.log()}")
    assert len(seen) > 50, f"only {len(seen)} answers watched"
    loads = re.findall(r"reload: ok, (\d+) services", s.log())
    assert loads and all(n == "2" for n in loads), f"loads: {loads}; stderr:\n{s.log()}"
    assert "reload: failed" not in s.log(), s.log()


def test_auto_reload_dangling_symlink_changes_nothing(started):
    """The ConfigMap's ..data missing for a moment: the file cannot be read, which is no
    change (never an empty mapping, never an error)."""
    s = started(ConfigMapServer, AUTO)
    data = s.mount / "..data"
    target = os.readlink(data)
    for _ in range(3):
        os.remove(data)
        check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])
        time.sleep(0.5)
        os.symlink(target, data)
        hold_answer(s, X, ["10.0.0.1"], 0.6)
    hold_answer(s, X, ["10.0.0.1"], 1.5)
    log = s.log()
    for needle in ("reload: ok", "reload: failed", "error", "changed"):
        assert needle not in log, f"{needle!r} logged though the file never changed:\n{log}"
    check_answer(s.ask(svc("late.a"), "A"), [f"{svc('late.a')} 5 IN A 10.0.0.50"])
    # the watch still works
    s.write_config(AUTO.replace("10.0.0.1", "10.0.0.6"))
    wait_answer(s, X, ["10.0.0.6"], 10)


def test_without_reload_only_sighup(svcmapd):
    s = svcmapd(mapping())
    assert "looking at" not in s.log()
    s.write_config(mapping().replace("10.0.0.1", "10.0.0.2"))
    hold_answer(s, X, ["10.0.0.1"], 2.5)
    assert "reload:" not in s.log(), s.log()
    outcome, new = s.reload()
    assert outcome == "ok", new
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.2"])


# =========================================================================== 5. systemd notify


def test_systemd_notify(svcmapd, tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    assert len(str(path)) < 100, path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        s = svcmapd(mapping(), wait=False)
        monkeypatch.delenv("NOTIFY_SOCKET")

        def receive(timeout=5.0 * SLOW):
            sock.settimeout(timeout)
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                pytest.fail(f"no notification within {timeout}s; stderr:\n{s.log()}")
            return dict(line.split("=", 1) for line in data.split("\n") if line)

        msg = receive()
        assert msg.get("READY") == "1", msg
        # READY means serving: DNS answers right away
        check_answer(s.ask(X, "A", timeout=2.0), [f"{X} 5 IN A 10.0.0.1"])

        s.write_config(mapping().replace("10.0.0.1", "10.0.0.2"))
        os.kill(s.proc.pid, signal.SIGHUP)
        msg = receive()
        now_us = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        assert msg.get("RELOADING") == "1", msg
        assert "MONOTONIC_USEC" in msg, f"RELOADING=1 without MONOTONIC_USEC: {msg}"
        assert abs(int(msg["MONOTONIC_USEC"]) - now_us) < 10e6, (msg, now_us)
        msg = receive()
        assert msg.get("READY") == "1", msg
        check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.2"])

        s.write_config(mapping().replace("10.0.0.1", "10.0.0.300"))
        os.kill(s.proc.pid, signal.SIGHUP)
        assert receive().get("RELOADING") == "1"
        assert receive().get("READY") == "1", "a failed reload must end RELOADING too"

        os.kill(s.proc.pid, signal.SIGTERM)
        msg = receive()
        assert msg.get("STOPPING") == "1", msg
        assert s.proc.wait(5) == 0
    finally:
        sock.close()


# =========================================================================== 6. --print


PRINT_MAPPING = """[server]
zone = {zone}
ttl = {ttl}

[namespace a]
x = 10.0.0.1
y = y.example.com

[namespace b]
z = 10.0.0.3:80

[upstream]
servers = none
"""
NAMES = ["x.a.svc.{z}", "y.a.svc.{z}", "z.b.svc.{z}"]
BLOCK_RE = re.compile(r"(\S+):53 \{\n    errors\n(?:    cache (\d+)\n)?    forward \. (\S+)\n\}\n")


def print_form(tmp_path, form, server, zone="cluster.local", ttl=5):
    path = tmp_path / f"print-{zone}-{ttl}.ini"
    path.write_text(PRINT_MAPPING.format(zone=zone, ttl=ttl))
    return run_cli(["-c", str(path), "--print", form, server])


def corefile_blocks(out):
    """Comment lines, then nothing but server blocks: [(zone, cache, forward)]."""
    body = "".join(line + "\n" for line in out.splitlines() if not line.startswith("#"))
    blocks, pos = [], 0
    for m in BLOCK_RE.finditer(body):
        assert m.start() == pos, f"not a server block: {body[pos:m.start()]!r}"
        blocks.append((m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    assert pos == len(body), f"not a server block: {body[pos:]!r}"
    return blocks


@pytest.mark.parametrize("server,target", [("127.0.0.1:5353", "127.0.0.1:5353"),
                                           ("10.96.0.53", "10.96.0.53"),
                                           ("10.96.0.53:53", "10.96.0.53"),
                                           ("[fd00::53]:5353", "[fd00::53]:5353"),
                                           ("fd00::53", "fd00::53")])
def test_print_corefile_forms(tmp_path, server, target):
    rc, out, err = print_form(tmp_path, "corefile-names", server)
    assert rc == 0, err
    names = [n.format(z="cluster.local") for n in NAMES]
    assert corefile_blocks(out) == [(n, "5", target) for n in names], out
    rc, out, err = print_form(tmp_path, "corefile-namespaces", server)
    assert rc == 0, err
    assert corefile_blocks(out) == [("a.svc.cluster.local", "5", target),
                                    ("b.svc.cluster.local", "5", target)], out
    rc, out, err = print_form(tmp_path, "corefile-zone", server, zone="ext.example", ttl=0)
    assert rc == 0, err
    assert corefile_blocks(out) == [("ext.example", None, target)], out


def stub_domains(out):
    """The kube-dns ConfigMap: its YAML skeleton, and data.stubDomains parsed as JSON."""
    lines = out.splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    assert body[:8] == ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: kube-dns",
                        "  namespace: kube-system", "data:", "  stubDomains: |",
                        body[7]] and len(body) == 8, out
    assert body[7].startswith("    "), out
    stub = json.loads(body[7])
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(out)
        assert doc["kind"] == "ConfigMap" and doc["metadata"] == {"name": "kube-dns",
                                                                  "namespace": "kube-system"}
        assert json.loads(doc["data"]["stubDomains"]) == stub
    return stub


def test_print_stubdomains(tmp_path):
    rc, out, err = print_form(tmp_path, "stubdomains", "127.0.0.1:5353")
    assert rc == 0, err
    assert stub_domains(out) == {n.format(z="cluster.local"): ["127.0.0.1:5353"]
                                 for n in NAMES}
    rc, out, err = print_form(tmp_path, "stubdomains", "10.96.0.53", zone="ext.example")
    assert rc == 0, err
    assert stub_domains(out) == {"ext.example": ["10.96.0.53"]}


@pytest.mark.parametrize("args,status", [
    (["--print", "corefile", "127.0.0.1"], 2),
    (["--print", "corefile-names", "dns.example.com"], 2),
    (["--print", "corefile-names", "127.0.0.1:0"], 2),
    (["--print", "corefile-names", "127.0.0.1:65536"], 2),
    (["--print", "corefile-names"], 2),
    (["--print", "corefile-names", "127.0.0.1", "extra"], 2),
])
def test_print_usage_errors(tmp_path, args, status):
    path = tmp_path / "ok.ini"
    path.write_text(PRINT_MAPPING.format(zone="cluster.local", ttl=5))
    rc, out, err = run_cli(["-c", str(path), *args])
    assert rc == status, f"svcmapd --print {args}: exit {rc}, expected {status}; {err}"
    assert out == "", f"nothing on stdout for a usage error: {out!r}"
    assert err.strip(), "a usage error says why"


def test_print_bad_config(tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text(PRINT_MAPPING.format(zone="cluster.local", ttl=5).replace("10.0.0.1",
                                                                               "10.0.0.300"))
    rc, out, err = run_cli(["-c", str(path), "--print", "corefile-names", "127.0.0.1"])
    assert rc == 1, f"exit {rc}: {err}"
    assert out == "", out
    assert error_lines(err, path) == [6], err
