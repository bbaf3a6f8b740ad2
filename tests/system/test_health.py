"""test_health.py -- health-checked targets with failover (SPEC §6), against real listeners.

Every target is a listener of the test on a loopback address (127.0.0.2, 127.0.0.3...):
the mapping points at them, so svcmapd's probes never leave loopback.  A target goes
down by closing its listener (the next connect is refused) or by answering HTTP 500, or
by accepting and never answering; it comes back by listening again.  The tests time
transitions against `[health]`: interval 1 s, timeout 500 ms, fall 3, rise 2, and allow
for a loaded 2-core machine; none asserts a speed.
"""

import json
import os
import re
import selectors
import signal
import socket
import threading
import time

import dns.rdatatype
import pytest

from conftest import (SLOW, check_answer, free_port, run_cli, socket_rows, svc)
from test_ops import check_histogram, http_request, promtool_check, scrape

INTERVAL, TIMEOUT, FALL, RISE = 1.0, 0.5, 3, 2
HEALTH = f"[health]\ninterval = 1s\ntimeout = 500ms\nfall = {FALL}\nrise = {RISE}\n"


class Backend:
    """A target, or a group of them on one port: a listener on each of `hosts` that,
    by `mode`, accepts and closes (tcp), answers an HTTP status (an int: 200, 500...),
    or accepts and never answers (hang); one thread serves them all.  It keeps the
    requests it read and when each host accepted.  stop() closes the listeners (and
    what they hold), so that connects are refused; start() listens again."""

    def __init__(self, hosts, port, mode="tcp"):
        self.hosts, self.port, self.mode = list(hosts), port, mode
        self.requests = []
        self.accepted = {h: [] for h in self.hosts}   # host -> monotonic accept times
        self.lock = threading.Lock()
        self.thread = None
        self._stop = threading.Event()
        self._stop.set()
        self.start()

    def start(self):
        socks = []
        for h in self.hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((h, self.port))
            s.listen(128)
            s.setblocking(False)
            socks.append((s, h))
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(socks, self._stop), daemon=True)
        self.thread.start()

    def _run(self, socks, stop):
        sel = selectors.DefaultSelector()
        for s, h in socks:
            sel.register(s, selectors.EVENT_READ, h)
        held = []
        try:
            while not stop.is_set():
                for key, _ in sel.select(0.05):
                    if isinstance(key.data, str):
                        try:
                            c, _ = key.fileobj.accept()
                        except OSError:
                            continue
                        with self.lock:
                            self.accepted[key.data].append(time.monotonic())
                        if self.mode == "tcp":
                            c.close()
                        elif self.mode == "hang":
                            held.append(c)
                        else:
                            c.setblocking(False)
                            sel.register(c, selectors.EVENT_READ, [b""])
                        continue
                    c, buf = key.fileobj, key.data
                    try:
                        data = c.recv(4096)
                    except OSError:
                        data = b""
                    buf[0] += data
                    if data and b"\r\n\r\n" not in buf[0]:
                        continue
                    sel.unregister(c)
                    with self.lock:
                        self.requests.append(buf[0].decode(errors="replace"))
                    if data:
                        try:
                            c.sendall(f"HTTP/1.1 {self.mode} X\r\nContent-Length: 0\r\n"
                                      f"Connection: close\r\n\r\n".encode())
                        except OSError:
                            pass
                    c.close()
        finally:
            for c in held:
                c.close()
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()

    def first_accepts(self, since):
        """The first accept time at or after `since` of each host that had one."""
        with self.lock:
            return [next(t for t in ts if t >= since) for ts in self.accepted.values()
                    if any(t >= since for t in ts)]

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()

    def close(self):
        if not self._stop.is_set():
            self.stop()


@pytest.fixture
def backends():
    """Factory: backends(host or hosts, mode='tcp', port=None) -> a listening Backend;
    all are closed at teardown."""
    made = []

    def make(hosts, mode="tcp", port=None):
        hosts = [hosts] if isinstance(hosts, str) else hosts
        b = Backend(hosts, port or free_port(hosts[0]), mode)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def mapping(services, extra=""):
    return (f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\n\n{extra}{HEALTH}\n"
            f"[namespace prod]\n{services}")


def wrapped(targets):
    """Targets, eight to a line (inih reads 198 characters of one)."""
    return ",\n  ".join(", ".join(targets[i:i + 8]) for i in range(0, len(targets), 8))


def addresses_of(s, name, rdtype="A"):
    r = s.ask(svc(name), rdtype)
    return sorted(rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rd in rrset)


def wait_for(cond, timeout, what, step=0.05):
    """Polls cond() until it is true; returns the time it took (monotonic)."""
    t0 = time.monotonic()
    deadline = t0 + timeout * SLOW
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(step)


def targets_json(port):
    status, headers, body = http_request(port, "/health/targets")
    assert status == 200 and headers.get("content-type") == "application/json", (status, body)
    return json.loads(body)


def warmed_up(s, name, n):
    """Waits until every target of `name` has been probed once and answers (all up)."""
    wait_for(lambda: len(addresses_of(s, name)) == n, 3 * INTERVAL, f"{name}: {n} targets")
    time.sleep(INTERVAL + 0.2)  # each probed at least once


# --------------------------------------------------------------------------- transitions


def test_down_after_fall_up_after_rise(svcmapd, backends):
    """A target that stops listening leaves the answers after `fall` failed probes, not
    before, not long after, with one log line; it comes back after `rise` successes."""
    a = backends("127.0.0.2")
    backends("127.0.0.3", port=a.port)
    s = svcmapd(mapping(f"db = 127.0.0.2:{a.port}, 127.0.0.3:{a.port} check=tcp\n"))
    warmed_up(s, "db.prod", 2)

    a.stop()
    t_stop = time.monotonic()
    gone = None
    while time.monotonic() - t_stop < (FALL + 2) * INTERVAL * SLOW:
        got = addresses_of(s, "db.prod")
        assert "127.0.0.3" in got, got
        if got == ["127.0.0.3"]:
            gone = time.monotonic() - t_stop
            break
        time.sleep(0.02)
    assert gone is not None, f"127.0.0.2 still answered after {FALL + 2} intervals:\n{s.log()}"
    # the 3rd failure comes 2 intervals after the 1st at the earliest, 3 at the latest
    assert (FALL - 1) * INTERVAL - 0.15 <= gone <= FALL * INTERVAL + TIMEOUT + 0.5 * SLOW, (
        f"down after {gone:.2f}s, expected {FALL} probes at 1s intervals")
    line = s.wait_log(f"health: db.prod 127.0.0.2:{a.port} down: {FALL} failures, "
                      "last: connection refused")
    assert s.count(f"127.0.0.2:{a.port} down:") == 1, line
    for _ in range(20):  # it stays out
        assert addresses_of(s, "db.prod") == ["127.0.0.3"]
        time.sleep(0.02)

    a.start()
    t_up = time.monotonic()
    back = wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.2", "127.0.0.3"],
                    (RISE + 2) * INTERVAL, "127.0.0.2 back")
    assert (RISE - 1) * INTERVAL - 0.15 <= back <= RISE * INTERVAL + 0.5 * SLOW, (
        f"up after {back:.2f}s, expected {RISE} probes at 1s intervals")
    s.wait_log(f"health: db.prod 127.0.0.2:{a.port} up: {RISE} successes")
    assert time.monotonic() - t_up < (RISE + 2) * INTERVAL * SLOW


def test_all_down_answers_all(svcmapd, backends):
    """Never empty because of checks: every target down, every target answered, and
    the table says which are down and that they are answered all the same."""
    http = free_port()
    ports = [free_port("127.0.0.2")]
    s = svcmapd(mapping(f"db = 127.0.0.2:{ports[0]}, 127.0.0.3:{ports[0]} check=tcp\n",
                        f"[http]\nhealth = 127.0.0.1:{http}\n\n"))
    # nothing listens: they start up (no cold-start outage) ...
    assert addresses_of(s, "db.prod") == ["127.0.0.2", "127.0.0.3"]
    t = targets_json(http)
    assert [x["up"] for x in t["targets"]] == [True, True], t
    # ... and go down together, answered all the same
    wait_for(lambda: all(not x["up"] for x in targets_json(http)["targets"]),
             (FALL + 2) * INTERVAL, "both down")
    for _ in range(10):
        assert addresses_of(s, "db.prod") == ["127.0.0.2", "127.0.0.3"]
    t = targets_json(http)
    assert t["interval"] == "1s" and t["timeout"] == "500ms" and t["fall"] == FALL
    for x in t["targets"]:
        assert (x["namespace"], x["service"], x["check"], x["up"], x["answered"],
                x["transitions"], x["last_error"]) == (
            "prod", "db", f"tcp:{ports[0]}", False, True, 1, "connection refused"), x
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", x["since"]), x


def test_failover_order(svcmapd, backends):
    """policy=failover: the first healthy target in file order, in A and SRV answers,
    and in a CNAME to the service; the standby takes over, the primary takes back."""
    b2 = backends("127.0.0.2")
    port = b2.port
    b3 = backends("127.0.0.3", port=port)
    b4 = backends("127.0.0.4", port=port)
    s = svcmapd(mapping(f"db = 127.0.0.2:{port}, 127.0.0.3:{port}, 127.0.0.4:{port} "
                        f"check=tcp policy=failover\nalias = db.prod.svc.cluster.local\n"))
    assert addresses_of(s, "db.prod") == ["127.0.0.2"]
    time.sleep(INTERVAL)

    b2.stop()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3"], (FALL + 2) * INTERVAL,
             "the first standby")
    srv = s.ask("_db._tcp." + svc("db.prod"), "SRV")
    check_answer(srv, [f"_db._tcp.{svc('db.prod')} 1 IN SRV 0 100 {port} 127-0-0-3.{svc('db.prod')}"],
                 [f"127-0-0-3.{svc('db.prod')} 1 IN A 127.0.0.3"])
    assert addresses_of(s, "alias.prod") == ["127.0.0.3"]

    b3.stop()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.4"], (FALL + 2) * INTERVAL,
             "the second standby")
    b2.start()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.2"], (RISE + 2) * INTERVAL,
             "the primary back")

    b2.stop()
    b4.stop()
    wait_for(lambda: len(addresses_of(s, "db.prod")) == 3, (FALL + 2) * INTERVAL, "all down")
    for _ in range(20):
        r = s.ask(svc("db.prod"), "A")
        assert [rd.to_text() for rd in r.answer[0]] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"], (
            "failover with every target down: all of them, in the order of the file")


def test_ttl_at_most_interval(svcmapd, backends):
    """The records of a checked service have a TTL of at most `interval` (1 s here);
    an unchecked one keeps the server's."""
    s = svcmapd(mapping("db = 127.0.0.2:5432, 127.0.0.3:5432 check=tcp\n"
                        "plain = 127.0.0.2, 127.0.0.3\n"))
    r = s.ask(svc("db.prod"), "A")
    assert r.answer[0].ttl == 1, r
    assert s.ask(svc("plain.prod"), "A").answer[0].ttl == 5


# --------------------------------------------------------------------------- HTTP


def test_http_checks(svcmapd, backends):
    """check=http:PORT/PATH: 200 passes; 500 fails; a server that accepts and never
    answers fails by timeout. The request is a GET of PATH with Host and Connection:
    close. Queries are answered at once throughout."""
    http = free_port()
    ok = backends("127.0.0.2", 200)
    port = ok.port
    bad = backends("127.0.0.3", 500, port=port)
    hang = backends("127.0.0.4", "hang", port=port)
    s = svcmapd(mapping(f"web = 127.0.0.2, 127.0.0.3, 127.0.0.4 check=http:{port}/healthz?x=1\n",
                        f"[http]\nhealth = 127.0.0.1:{http}\n\n"))
    t0 = time.monotonic()
    while time.monotonic() - t0 < (FALL + 2) * INTERVAL * SLOW:
        t = time.monotonic()
        got = addresses_of(s, "web.prod")
        assert time.monotonic() - t < 0.5 * SLOW, "a query waited while probes hang"
        if got == ["127.0.0.2"]:
            break
        time.sleep(0.05)
    assert addresses_of(s, "web.prod") == ["127.0.0.2"], s.log()
    by = {x["target"]: x for x in targets_json(http)["targets"]}
    assert by["127.0.0.2"]["up"] and by["127.0.0.2"]["last_error"] is None, by
    assert by["127.0.0.3"]["last_error"] == "HTTP 500", by
    assert by["127.0.0.4"]["last_error"] == "timeout waiting for the response", by
    assert by["127.0.0.2"]["check"] == f"http:{port}/healthz?x=1"
    s.wait_log(f"health: web.prod 127.0.0.3 down: {FALL} failures, last: HTTP 500")
    s.wait_log(f"health: web.prod 127.0.0.4 down: {FALL} failures, last: timeout waiting for "
               "the response")
    with ok.lock:
        req = ok.requests[0]
    head = req.split("\r\n")
    assert head[0] == "GET /healthz?x=1 HTTP/1.1", req
    assert f"Host: 127.0.0.2:{port}" in head and "Connection: close" in head, req


# --------------------------------------------------------------------------- reload


def test_reload_keeps_states(svcmapd, backends):
    """A reload keeps the state of every target whose address, port and check stay
    (from the first query after it on), drops removed targets, and starts new ones up."""
    b2 = backends("127.0.0.2")
    port = b2.port
    b3 = backends("127.0.0.3", port=port)
    b4 = backends("127.0.0.4", port=port)
    b2.stop()  # down once probed
    s = svcmapd(mapping(f"db = 127.0.0.2:{port}, 127.0.0.3:{port}, 127.0.0.4:{port} check=tcp\n"
                        f"other = 127.0.0.3:{port}, 127.0.0.4:{port} check=tcp\n"))
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3", "127.0.0.4"],
             (FALL + 2) * INTERVAL, "127.0.0.2 down")

    # keep .2 (down) and .3, drop .4, add .5 (nothing listens there) and .6 listening
    b6 = backends("127.0.0.6", port=port)
    outcome, _ = s.reload(mapping(
        f"db = 127.0.0.2:{port}, 127.0.0.3:{port}, 127.0.0.5:{port}, 127.0.0.6:{port} check=tcp\n"
        f"other = 127.0.0.3:{port}, 127.0.0.4:{port} check=tcp:{port}\n"))
    assert outcome == "ok"
    t_reload = time.monotonic()
    while time.monotonic() - t_reload < 0.8:
        assert addresses_of(s, "db.prod") == ["127.0.0.3", "127.0.0.5", "127.0.0.6"], (
            "after the reload: .2 still down, the new .5 up until probed")
        time.sleep(0.02)
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3", "127.0.0.6"],
             (FALL + 2) * INTERVAL, "the new target goes down once probed")
    assert s.count(f"127.0.0.2:{port} down:") == 1, "a kept target's transition is not repeated"
    s.wait_log("health: probing")
    b6.close()
    b3.close()
    b4.close()


def test_sighup_storm_while_probing(svcmapd, backends):
    """Fifty SIGHUPs 20 ms apart, alternating two mappings, while probes run and queries
    come: a down target never appears, the server stays, and probing goes on after."""
    b2 = backends("127.0.0.2")
    port = b2.port
    b3 = backends("127.0.0.3", port=port)
    b2.stop()
    one = mapping(f"db = 127.0.0.2:{port}, 127.0.0.3:{port} check=tcp policy=failover\n")
    two = one + "extra = 127.0.0.9:1, 127.0.0.10:1\n"
    s = svcmapd(one)
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3"], (FALL + 2) * INTERVAL,
             "the primary down")
    stop = threading.Event()
    seen = []

    def query():
        while not stop.is_set():
            seen.append(tuple(addresses_of(s, "db.prod")))

    q = threading.Thread(target=query)
    q.start()
    try:
        for i in range(50):
            s.write_config(two if i % 2 else one)
            os.kill(s.proc.pid, signal.SIGHUP)
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        stop.set()
        q.join(10)
    assert s.proc.poll() is None, s.log()
    assert seen and set(seen) == {("127.0.0.3",)}, f"answers during the storm: {set(seen)}"
    b2.start()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.2"], (RISE + 3) * INTERVAL,
             "the primary back after the storm")


# --------------------------------------------------------------------------- chains


def test_upstream_chain_back_to_a_checked_service(svcmapd, backends, upstream):
    """A chain that leaves the zone and comes back to a checked service through the
    upstream's CNAME sees the same selection as a query for the service."""
    b2 = backends("127.0.0.2")
    port = b2.port
    backends("127.0.0.3", port=port)
    u = upstream()
    u.add("x.example.test.", "CNAME", "db.prod.svc.cluster.local.")
    s = svcmapd(mapping(f"db = 127.0.0.2:{port}, 127.0.0.3:{port} check=tcp policy=failover\n"
                        "ext = x.example.test\n",
                        f"[upstream]\nservers = 127.0.0.1:{u.port}\n\n"))
    r = s.ask(svc("ext.prod"), "A")
    assert [rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A
            for rd in rrset] == ["127.0.0.2"], r
    b2.stop()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3"], (FALL + 2) * INTERVAL,
             "the primary down")
    r = s.ask(svc("ext.prod"), "A")
    assert [rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A
            for rd in rrset] == ["127.0.0.3"], r


# --------------------------------------------------------------------------- spread, bounds


def test_probes_spread_over_the_interval(svcmapd, backends):
    """60 targets of one interval are probed at points spread over it, at start and
    after a reload that adds 60 more: never all at once."""
    first = backends([f"127.0.2.{i}" for i in range(1, 61)])
    port = first.port
    more = backends([f"127.0.3.{i}" for i in range(1, 61)], port=port)

    def services(prefix, net):
        return "".join(f"{prefix}{k} = " + ", ".join(f"127.0.{net}.{i}:{port}"
                                                    for i in range(k * 6 + 1, k * 6 + 7))
                       + " check=tcp\n" for k in range(10))

    def spread(group, since):
        times = group.first_accepts(since)
        assert len(times) == 60, f"{len(times)} of 60 probed"
        bins = [0] * 10
        for t in times:
            bins[min(9, int((t % INTERVAL) / INTERVAL * 10))] += 1
        return bins

    s = svcmapd(mapping(services("s", 2)))
    time.sleep(INTERVAL * 1.5)
    bins = spread(first, 0)
    assert max(bins) <= 24, f"probes per tenth of the interval at start: {bins}"

    t_reload = time.monotonic()
    assert s.reload(mapping(services("s", 2) + services("t", 3)))[0] == "ok"
    time.sleep(INTERVAL * 1.5)
    bins = spread(more, t_reload)
    assert max(bins) <= 24, f"probes per tenth of the interval after a reload: {bins}"


def test_probes_in_flight_are_bounded(svcmapd, backends):
    """300 targets that accept and never answer, each probe holding its socket for a
    timeout of 950 ms every 1 s: more than 256 would be in flight, and 256 are, the rest
    waiting their turn; queries are answered at once meanwhile."""
    hosts = [f"127.0.4.{i}" for i in range(1, 251)] + [f"127.0.5.{i}" for i in range(1, 51)]
    group = backends(hosts, "hang")
    port = group.port
    svcs = "".join(f"h{k} = " + wrapped([f"{h}:{port}" for h in hosts[k * 50:k * 50 + 50]])
                   + f" check=http:{port}/\n" for k in range(6))
    s = svcmapd(mapping(svcs).replace("timeout = 500ms", "timeout = 950ms"))
    most = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3 * INTERVAL:
        probes = [r for r in socket_rows(s.proc.pid, "tcp") if r[2].endswith(f":{port:04X}")]
        most = max(most, len(probes))
        t = time.monotonic()
        s.ask(svc("h0.prod"), "A")
        assert time.monotonic() - t < 0.5 * SLOW
        time.sleep(0.05)
    # a sample counts the sockets open throughout its reading of /proc (conftest), so it
    # may miss a few that came or went meanwhile, never count more than were open at
    # once; without the cap ~285 are open
    assert 200 <= most <= 256, f"{most} probe sockets at once"
    accepted = sum(len(v) for v in group.accepted.values())
    assert accepted > 256, f"only {accepted} probes ran: the queue does not move"


# --------------------------------------------------------------------------- visibility


def test_metrics(svcmapd, backends):
    """svcmapd_health_target_up and _transitions_total per target, the probe-duration
    histogram per check, in a format promtool accepts."""
    metrics = free_port()
    b2 = backends("127.0.0.2")
    port = b2.port
    backends("127.0.0.3", port=port)
    s = svcmapd(mapping(f"db = 127.0.0.2:{port}, 127.0.0.3:{port} check=tcp\n",
                        f"[http]\nmetrics = 127.0.0.1:{metrics}\n\n"))
    b2.stop()
    wait_for(lambda: addresses_of(s, "db.prod") == ["127.0.0.3"], (FALL + 2) * INTERVAL, "down")
    m = scrape(metrics)
    up = {lb["target"]: v for lb, v in m.find("svcmapd_health_target_up", namespace="prod",
                                              service="db")}
    assert up == {f"127.0.0.2:{port}": 0, f"127.0.0.3:{port}": 1}, up
    assert m.get("svcmapd_health_transitions_total", namespace="prod", service="db",
                 target=f"127.0.0.2:{port}") == 1
    assert m.get("svcmapd_health_transitions_total", namespace="prod", service="db",
                 target=f"127.0.0.3:{port}") == 0
    count, _ = check_histogram(m, "svcmapd_health_probe_duration_seconds",
                               ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                "0.1", "0.25", "0.5", "1", "2.5"], check="tcp")
    assert count >= FALL  # the down target alone was probed that often
    promtool_check(http_request(metrics, "/metrics")[2].decode())


def test_check_warnings(tmp_path):
    """-t: a check with nothing to choose between is a warning, and the file is valid."""
    f = tmp_path / "w.ini"
    f.write_text("[namespace a]\none = 10.0.0.1:80 check=tcp\nhost = db.example.com check=tcp:5432\n")
    rc, out, err = run_cli(["-t", "-c", str(f)])
    assert rc == 0, err
    assert err.splitlines() == [
        f"{f}:2: warning: service 'one': check= on a single target has no effect (nothing to "
        "choose between: it is always answered)",
        f"{f}:3: warning: service 'host': check= on a hostname has no effect (a CNAME has one "
        "target: nothing to choose between)"], err
