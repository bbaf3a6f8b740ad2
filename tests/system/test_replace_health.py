"""test_replace_health.py -- SPEC 7 "Health state ... carry over" on `svcmapd --replace`
(SPEC 6): a target the running svcmapd found down is never answered by the one that replaces
it, from its first query on, under a small load; the new one shows it down since the same
moment (`svcmapctl health`, /health/targets), keeps the up one, and brings it back after
`rise` probes of its own; a failure the old one counted toward `fall` counts on in the new
one. Then an old svcmapd played by the test, whose health facts are hostile: each bad line
is refused, logged, and changes nothing (its target starts up, as at a cold start), while a
good line among them is taken.

Targets are listeners of the test on 127.0.0.2 and up (test_health.Backend): probes never
leave loopback."""

import os
import re
import socket
import threading
import time

import dns.message

import conftest
from conftest import SLOW, free_port, inject_upstream, run_ctl, svc
from test_health import FALL, HEALTH, INTERVAL, RISE, Backend, targets_json, wait_for
from test_health import backends  # noqa: F401 (a fixture)
from test_replace import fleet, sockdir  # noqa: F401 (fixtures)

NAME = svc("db.prod")


def mapping(port, http, sock, services, health=HEALTH):
    return inject_upstream(
        f"[server]\nlisten = 127.0.0.1:{port}\nworkers = {os.environ.get('SVCMAPD_TEST_WORKERS', '2')}"
        f"\nttl = 5\n\n[http]\nhealth = 127.0.0.1:{http}\n\n[control]\nsocket = {sock}\n\n"
        f"{health}\n[namespace prod]\n{services}")


def answered(port, timeout=1.0, name=NAME):
    """The A addresses of one UDP answer for `name` (db.prod), sorted; None if none came."""
    w = conftest.udp_exchange(conftest.make_query(name).to_wire(), port, timeout=timeout)
    if w is None:
        return None
    return sorted(rd.address for rrset in dns.message.from_wire(w).answer for rd in rrset)


class Asker:
    """A small load: one UDP query for db.prod at a time, about 200 a second, until stop();
    every answer kept, every query without one counted."""

    def __init__(self, port):
        self.port, self.answers, self.lost = port, [], 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            got = answered(self.port, timeout=0.5)
            if got is None:
                self.lost += 1
            else:
                self.answers.append(got)
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.answers


def health_lines(sock):
    rc, out, err = run_ctl(["-s", sock, "health"])
    assert rc == 0, (out, err)
    return out.splitlines()


def by_target(http):
    return {t["target"]: t for t in targets_json(http)["targets"]}


def test_a_target_down_stays_out(fleet, backends, sockdir):
    """127.0.0.3 does not listen and is found down; after --replace the new svcmapd never
    answers it, shows it down since the same moment, keeps 127.0.0.2 up, and answers
    127.0.0.3 again `rise` probes after it listens."""
    up = backends("127.0.0.2")
    p = up.port
    assert conftest.port_free("127.0.0.3", p) == p
    port, http, sock = free_port(), free_port(), os.path.join(sockdir, "c.sock")
    cfg = mapping(port, http, sock, f"db = 127.0.0.2:{p}, 127.0.0.3:{p} check=tcp\n")
    old = fleet.start(cfg)
    wait_for(lambda: answered(port) == ["127.0.0.2"], (FALL + 3) * INTERVAL,
             "127.0.0.3 found down by the first svcmapd")
    before = by_target(http)
    down = before[f"127.0.0.3:{p}"]
    assert not down["up"] and down["transitions"] == 1, before
    assert down["last_error"] == "connection refused", before
    lines = health_lines(sock)

    load = Asker(port)
    time.sleep(0.3)
    new = fleet.replace(old, cfg)
    right_after = [answered(port) for _ in range(50)]
    time.sleep(0.5)
    answers = load.stop()
    assert right_after == [["127.0.0.2"]] * 50, right_after
    assert answers and all(a == ["127.0.0.2"] for a in answers), \
        [a for a in answers if a != ["127.0.0.2"]][:5]
    assert load.lost == 0, f"{load.lost} of {len(answers) + load.lost} queries lost"

    log = fleet.log(new)
    assert "replace: the health state of 2 of 2 checked targets carried over (1 down)" in log, log
    after = by_target(http)
    assert after[f"127.0.0.3:{p}"] == down, (before, after)
    assert after[f"127.0.0.2:{p}"]["up"] and after[f"127.0.0.2:{p}"]["since"] == \
        before[f"127.0.0.2:{p}"]["since"], (before, after)
    assert health_lines(sock) == lines

    # the new prober counts on: down until `rise` successes, then answered
    comes_back = Backend(["127.0.0.3"], p)
    try:
        t0 = time.monotonic()
        wait_for(lambda: answered(port) == ["127.0.0.2", "127.0.0.3"], (RISE + 2) * INTERVAL,
                 "127.0.0.3 back in the answers")
        assert time.monotonic() - t0 > (RISE - 1) * INTERVAL * 0.5, "up before `rise` probes"
    finally:
        comes_back.close()
    log = fleet.log(new)
    assert f"health: db.prod 127.0.0.3:{p} up: {RISE} successes" in log, log
    back = by_target(http)[f"127.0.0.3:{p}"]
    assert back["up"] and back["transitions"] == 2 and back["since"] >= down["since"], back


def test_failures_counted_go_on(fleet, backends, sockdir):
    """A target the old svcmapd has counted one failure of (toward `fall` 3) goes down after
    two more probes of the new one, not three: each probe is an accept of the backend, which
    answers HTTP 500 from a moment between two probes. The interval, 2 s, keeps the old
    svcmapd from probing again before it has handed over."""
    interval = 2.0
    health = f"[health]\ninterval = 2s\ntimeout = 1s\nfall = {FALL}\nrise = {RISE}\n"
    b = backends("127.0.0.2", mode=200)
    p = b.port
    backends("127.0.0.3", mode=200, port=p)
    port, http, sock = free_port(), free_port(), os.path.join(sockdir, "c.sock")
    cfg = mapping(port, http, sock, f"web = 127.0.0.2, 127.0.0.3 check=http:{p}/healthz\n",
                  health=health)
    old = fleet.start(cfg)
    wait_for(lambda: len(b.accepted["127.0.0.2"]) >= 1, 2 * interval, "a first probe")
    seen = len(b.accepted["127.0.0.2"])
    wait_for(lambda: len(b.accepted["127.0.0.2"]) > seen, 2 * interval, "a second probe")
    time.sleep(0.2)   # its 200 is out: the next probe is an interval away
    b.mode = 500
    switched = time.monotonic()
    wait_for(lambda: by_target(http)["127.0.0.2"]["last_error"] == "HTTP 500",
             2 * interval, "one failure counted", step=0.02)
    assert by_target(http)["127.0.0.2"]["up"], "down after one failure"
    new = fleet.replace(old, cfg)
    wait_for(lambda: not by_target(http)["127.0.0.2"]["up"], (FALL + 1) * interval,
             "127.0.0.2 down in the new svcmapd", step=0.02)
    failed = [t for t in b.accepted["127.0.0.2"] if t >= switched]
    assert len(failed) == FALL, f"{len(failed)} probes failed before it went down"
    log = fleet.log(new)
    assert f"health: web.prod 127.0.0.2 down: {FALL} failures, last: HTTP 500" in log, log
    assert answered(port, name=svc("web.prod")) == ["127.0.0.3"]


# ------------------------------------------------------------- an old svcmapd of the test


HOSTILE = [
    "health 127.0.0.3 tcp:{p} down",                                  # fields missing
    "health 127.0.0.3  tcp:{p} down {now} 1 0 65647",                # two spaces
    "health 127.0.0.300 tcp:{p} down {now} 1 0 65647",               # not an address
    "health 127.0.0.3 udp:{p} down {now} 1 0 65647",                 # no such check
    "health 127.0.0.3 tcp:{p}/x down {now} 1 0 65647",               # a path on tcp
    "health 127.0.0.3 tcp:99999 down {now} 1 0 65647",               # not a port
    "health 127.0.0.3 tcp:{p} sideways {now} 1 0 65647",             # not a state
    "health 127.0.0.3 tcp:{p} down -5 1 0 65647",                    # a sign
    "health 127.0.0.3 tcp:{p} down 99999999999999999999 1 0 65647",  # past 64 bits
    "health 127.0.0.3 tcp:{p} down {later} 1 0 65647",               # two days ahead
    "health 127.0.0.3 tcp:{p} down {now} 1 101 65647",               # a streak above 100
    "health 127.0.0.3 tcp:{p} down {now} 1 0 4294967295",            # no such error
    "health 127.0.0.3 tcp:{p} down {now} 1 0 0x10",                  # not decimal
    "health 127.0.0.3 tcp:{p} down {now} 1 0 65647\x01",             # a control byte
    "health \u00e9 tcp:{p} down {now} 1 0 65647",                     # not ASCII
]


def dns_sockets(port):
    """A UDP socket and a TCP listener on 127.0.0.1:`port`, as a running svcmapd holds them."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    return udp, tcp


def fake_old(path, lines, udp, tcp, got):
    """Listens on the control socket `path` as a running svcmapd would, and hands over the
    sockets `udp` and `tcp` and its own with `lines` as its facts; `got` collects what the new
    one says."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(30 * SLOW)

    def run():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        with c:
            c.settimeout(15 * SLOW)
            got.append(c.recv(64))
            head = f"replace: pid {os.getpid()}, svcmapd 0.0.1-test\n"
            c.sendall((head + "".join(f"fact {l}\n" for l in lines)).encode("utf-8"))
            for label, s in ((f"udp 127.0.0.1:{udp.getsockname()[1]}", udp),
                             (f"tcp 127.0.0.1:{tcp.getsockname()[1]}", tcp),
                             (f"control {path}", srv)):
                socket.send_fds(c, [f"socket {label}\n".encode()], [s.fileno()])
            c.sendall(b"sockets 3\n")
            got.append(c.recv(64))
            c.sendall(f"replaced: pid {os.getpid()} drains and exits\nexit 0\n".encode())
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def replace_fake_old(fleet, cfg, port, sock, lines):
    """A new svcmapd on `cfg`, started with --replace against an old svcmapd of the test
    (fake_old) that offers `lines` as its facts and the sockets of 127.0.0.1:`port`: the new
    process, once the hand-over has ended, and what it said."""
    udp, tcp = dns_sockets(port)
    got = []
    try:
        t = fake_old(sock, lines, udp, tcp, got)
        new = fleet.start(cfg, "--replace")
        t.join(30 * SLOW)
        assert not t.is_alive(), (got, fleet.log(new))
    finally:
        udp.close()
        tcp.close()
    return new, got

def test_hostile_facts_change_nothing(fleet, backends, sockdir):
    """Fact lines broken in every way are refused one by one, logged, and leave their target
    up (cold start, said once); a good line among them takes 127.0.0.4 out of the answers."""
    up = backends(["127.0.0.2", "127.0.0.3"])
    p = up.port
    port, http, sock = free_port(), free_port(), os.path.join(sockdir, "c.sock")
    cfg = mapping(port, http, sock,
                  f"db = 127.0.0.2:{p}, 127.0.0.3:{p}, 127.0.0.4:{p} check=tcp\n")
    now = int(time.time() * 1000)
    good = f"health 127.0.0.4 tcp:{p} down {now - 60000} 3 1 65647"
    lines = [l.format(p=p, now=now, later=now + 2 * 86400000) for l in HOSTILE]
    lines += [good, good.replace("down", "up"),                       # one target twice
              f"health 127.0.0.9 tcp:{p} down {now} 1 0 65647",         # not in the mapping
              f"health 127.0.0.3 tcp:{p} down {now} 1 0 65647 more",    # a later field
              f"weather 127.0.0.3 tcp:{p} down"]                        # another fact
    lines[-2] = lines[-2].replace("127.0.0.3", "127.0.0.5")          # ...of a target not here
    new, got = replace_fake_old(fleet, cfg, port, sock, lines)
    assert got[:2] == [b"replace\n", b"answering\n"], (got, fleet.log(new))
    # the first answers: 127.0.0.4 out, the others up however their lines said
    assert answered(port) == ["127.0.0.2", "127.0.0.3"], fleet.log(new)
    log = fleet.log(new)
    rejected = re.findall(r"replace: a health fact rejected, nothing changed by it \((.*?)\)", log)
    assert len(rejected) == 8, log                  # logged one by one up to 8, then counted
    assert "; 16 facts rejected in all" in log, log
    assert ("replace: the health state of 1 of 3 checked targets carried over (1 down); 2 start "
            "up, as at a cold start: new in the mapping, or their facts were rejected; 2 "
            "offered for targets no longer in the mapping, ignored") in log, log
    assert "\x01" not in log and "\u00e9" not in log, "raw bytes of a fact in the log"
    t4 = by_target(http)[f"127.0.0.4:{p}"]
    assert not t4["up"] and t4["transitions"] == 3 and t4["last_error"] == "connection refused"
    assert t4["since"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - 60000) / 1000))
    # and the probes go on: 127.0.0.4 does not listen, the others do
    time.sleep(2 * INTERVAL * SLOW)
    assert answered(port) == ["127.0.0.2", "127.0.0.3"], fleet.log(new)


def test_an_old_svcmapd_without_health_facts(fleet, backends, sockdir):
    """An old svcmapd that offers no health state (a version before it): every target
    starts up, and the log says so once."""
    up = backends("127.0.0.2")
    p = up.port
    port, http, sock = free_port(), free_port(), os.path.join(sockdir, "c.sock")
    cfg = mapping(port, http, sock, f"db = 127.0.0.2:{p}, 127.0.0.3:{p} check=tcp\n")
    new, _ = replace_fake_old(fleet, cfg, port, sock, ["serial 7", "digest 0123456789abcdef"])
    assert answered(port) == ["127.0.0.2", "127.0.0.3"], fleet.log(new)
    log = fleet.log(new)
    assert log.count("as at a cold start") == 1, log
    assert ("the health state of 0 of 2 checked targets carried over (0 down); 2 start up, as "
            "at a cold start: the old svcmapd offered no health state") in log, log


def test_a_serial_fact_is_a_number_and_nothing_else(fleet, backends, sockdir):
    """`fact serial Nx` is no serial: the new svcmapd starts from its own, not from N + 1
    (sscanf's reading took it for N, a serial ahead of the clock's)."""
    up = backends("127.0.0.2")
    p = up.port
    port, http, sock = free_port(), free_port(), os.path.join(sockdir, "c.sock")
    cfg = mapping(port, http, sock, f"db = 127.0.0.2:{p}, 127.0.0.3:{p} check=tcp\n")
    ahead = int(time.time()) + 1_000_000_000
    new, _ = replace_fake_old(fleet, cfg, port, sock,
                              [f"serial {ahead}x", "digest 0123456789abcdef"])
    r = conftest.ask(port, "cluster.local", "SOA")
    assert r.answer and r.answer[0][0].serial < ahead, (r.to_text(), fleet.log(new))
