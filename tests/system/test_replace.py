"""test_replace.py -- SPEC 7: `svcmapd --replace -c FILE` takes over the running svcmapd's UDP
and TCP sockets through its control socket, and the old one drains and exits 0, without a
query lost: 20 replaces in a row under UDP and TCP load from clients that count every ID
(UDP without retries; TCP on persistent connections, pipelined, each reply before its
connection closes), alternating two binaries and two mappings whose answers differ; a broken
file (exit 1, the old one untouched); another `workers` count; `listen` that changes; a new
process that gives up half-way; the serial and the state-dir carried on. A plain restart,
under the same load, loses queries: the load would see it."""

import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

import conftest
from conftest import (free_port, held_sockets, inject_upstream, make_query, run_ctl,
                      stop_process, svc, svcmapd_path)
from test_ops import addresses
from test_state import wait_copy

SLOW = getattr(conftest, "SLOW", 1.0)
NAME = svc("x.a")
WORKERS = os.environ.get("SVCMAPD_TEST_WORKERS", "2")


def mapping(port, sock, address, workers=WORKERS, extra="", listen=None):
    return inject_upstream(
        f"[server]\nlisten = {listen or f'127.0.0.1:{port}'}\nworkers = {workers}\n{extra}\n"
        f"[control]\nsocket = {sock}\n\n[namespace a]\nx = {address}\n")


class Fleet:
    """The svcmapd processes of one test, each with its own log, each stopped by PID."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, config, *args, binary=None, name=None):
        n = len(self.procs) + 1
        cfg = self.workdir / f"{name or 'm'}{n}.ini"
        cfg.write_text(config)
        log = open(self.workdir / f"{name or 'm'}{n}.log", "wb")
        argv = [str(binary or svcmapd_path()), *args, "-c", str(cfg)]
        if conftest.VALGRIND:
            argv = conftest.VALGRIND_ARGV + argv
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=log, cwd=self.workdir)
        p.log_path, p.log_file, p.config = log.name, log, cfg
        self.procs.append(p)
        return p

    @staticmethod
    def log(p):
        return open(p.log_path, errors="replace").read()

    def wait_answering(self, p, port, address=None):
        """Until `port` answers with `address` (any answer when None)."""
        deadline = time.monotonic() + conftest.START_TIMEOUT
        while time.monotonic() < deadline:
            assert p.poll() is None, f"exited {p.returncode}:\n{self.log(p)}"
            w = conftest.udp_exchange(make_query(NAME).to_wire(), port, timeout=0.2)
            if w and (address is None or a_record(w) == address):
                return
            time.sleep(0.02)
        pytest.fail(f"no answer on {port}:\n{self.log(p)}")

    def replace(self, old, config, binary=None, timeout=10.0):
        """A new svcmapd with --replace; returns it once the old one has exited 0."""
        new = self.start(config, "--replace", binary=binary)
        try:
            status = old.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the old svcmapd did not exit:\n{self.log(old)}\nnew:\n{self.log(new)}")
        assert status == 0, f"the old svcmapd exited {status}:\n{self.log(old)}"
        assert new.poll() is None, f"the new svcmapd exited {new.returncode}:\n{self.log(new)}"
        return new

    def stop_all(self):
        for p in self.procs:
            stop_process(p)
            p.log_file.close()
        for p in self.procs:
            report = conftest.sanitizer_report(self.log(p))
            assert report is None, report
            assert p.returncode != conftest.VALGRIND_EXIT or not conftest.VALGRIND, self.log(p)


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    yield f
    f.stop_all()


@pytest.fixture
def sockdir():
    """A short directory: a unix socket's path holds at most 107 bytes."""
    d = tempfile.mkdtemp(prefix="svcrp-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def a_record(wire):
    """The address of a reply that holds one A record last (no EDNS), else None."""
    if len(wire) < 16 or struct.unpack("!H", wire[6:8])[0] != 1 or wire[3] & 0x0F:
        return None
    return socket.inet_ntoa(wire[-4:])


# ---------------------------------------------------------------------------- the load


class Load:
    """UDP and TCP clients that count every query until stop(): UDP at a steady rate from
    several sockets (spread over the server's sockets as SO_REUSEPORT spreads them), never
    retried; TCP on persistent connections, a window of pipelined queries at a time, each
    reply read before the next window. A connection the server closes between two windows
    is opened again. One reset is counted (a query or a reply lost with it). One the server
    closed (FIN) just as the client sent its next window, which the server then never read,
    is counted too, and that window is sent again on a new connection, as RFC 7766 6.2.4
    has clients do: no server can tell a window that is on its way from none."""

    def __init__(self, port, udp_sockets=8, udp_rate=400, tcp_connections=3, window=5,
                 pace=0.02):
        self.port = port
        self.template = bytearray(make_query(NAME).to_wire())
        self.udp_sockets, self.udp_rate = udp_sockets, udp_rate
        self.tcp_connections, self.window, self.pace = tcp_connections, window, pace
        self.lock = threading.Lock()
        self.sent = {}       # key -> send time
        self.answers = {}    # key -> (send time, address)
        self.duplicates = self.strays = self.refused = 0
        self.resets = self.cut_off = self.tcp_connects = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._udp, daemon=True)]
        self.threads += [threading.Thread(target=self._tcp, args=(k,), daemon=True)
                         for k in range(tcp_connections)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _wire(self, qid):
        self.template[0:2] = struct.pack("!H", qid)
        return bytes(self.template)

    def _answered(self, key, wire):
        with self.lock:
            if key not in self.sent:
                self.strays += 1
            elif key in self.answers:
                self.duplicates += 1
            else:
                self.answers[key] = (self.sent[key], a_record(wire))

    def _udp(self):
        socks = []
        for _ in range(self.udp_sockets):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("127.0.0.1", self.port))
            s.setblocking(False)
            socks.append(s)
        ids = [0] * len(socks)
        interval, n = 1.0 / self.udp_rate, 0
        next_send = time.monotonic()
        grace_end = None
        while grace_end is None or time.monotonic() < grace_end:
            if self.stopping.is_set() and grace_end is None:
                grace_end = time.monotonic() + 2.0 * SLOW   # stragglers
            now = time.monotonic()
            if grace_end is None and now >= next_send:
                k = n % len(socks)
                ids[k] += 1
                assert ids[k] < 65536, "the load outgrew its IDs"
                key = ("udp", k, ids[k])
                with self.lock:
                    self.sent[key] = now
                try:
                    socks[k].send(self._wire(ids[k]))
                except OSError:      # ICMP port unreachable from an earlier one
                    self.refused += 1
                n += 1
                next_send += interval
            wait = max(0.0, min(next_send - time.monotonic(), 0.05))
            ready, _, _ = select.select(socks, [], [], wait)
            for s in ready:
                k = socks.index(s)
                while True:
                    try:
                        w = s.recv(4096)
                    except BlockingIOError:
                        break
                    except OSError:
                        self.refused += 1
                        break
                    if len(w) >= 2:
                        self._answered(("udp", k, struct.unpack("!H", w[:2])[0]), w)
        for s in socks:
            s.close()

    def _tcp(self, k):
        conn, qid, todo = None, 0, []
        while not self.stopping.is_set():
            if conn is None:
                try:
                    conn = socket.create_connection(("127.0.0.1", self.port), timeout=5 * SLOW)
                except OSError:   # nothing listens: a plain restart
                    self.refused += 1
                    time.sleep(self.pace)
                    continue
                self.tcp_connects += 1
            # a FIN that came between two windows: the server closed an idle connection
            ready, _, _ = select.select([conn], [], [], 0)
            if ready:
                try:
                    data = conn.recv(1, socket.MSG_PEEK)
                except ConnectionResetError:
                    data = None
                    self.resets += 1
                if not data:
                    conn.close()
                    conn = None
                    continue
            batch = todo or []
            while len(batch) < self.window:
                qid = (qid + 1) % 65536
                batch.append(qid)
            todo = []
            now = time.monotonic()
            with self.lock:
                for q in batch:
                    self.sent.setdefault(("tcp", k, q), now)
            outstanding = list(batch)
            try:
                conn.sendall(b"".join(conftest.frame(self._wire(q)) for q in batch))
                while outstanding:
                    w = conftest.tcp_read_msg(conn)
                    q = struct.unpack("!H", w[:2])[0]
                    if q in outstanding:
                        outstanding.remove(q)
                    self._answered(("tcp", k, q), w)
            except (EOFError, ConnectionResetError, BrokenPipeError) as e:
                if isinstance(e, EOFError):
                    self.cut_off += 1          # a FIN that crossed the window
                else:
                    self.resets += 1
                todo = outstanding             # RFC 7766 6.2.4: retried on a new one
                conn.close()
                conn = None
                continue
            time.sleep(self.pace)
        if conn:
            conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(20 * SLOW)
            assert not t.is_alive(), "a load thread did not stop"

    def lost(self):
        with self.lock:
            return sorted(k for k in self.sent if k not in self.answers)

    def check_clean(self):
        lost = self.lost()
        assert not lost, (f"{len(lost)} of {len(self.sent)} queries never answered "
                          f"(first: {lost[:5]}); refused sends {self.refused}")
        assert self.duplicates == 0 and self.strays == 0, (self.duplicates, self.strays)
        assert self.resets == 0, f"{self.resets} TCP connections reset"

    def check_switches(self, switches):
        """switches: (from, until, address): every query sent in [from, until) was
        answered with address."""
        with self.lock:
            answers = list(self.answers.items())
        wrong = [(k, t, a, want) for k, (t, a) in answers for start, end, want in switches
                 if start <= t < end and a != want]
        assert not wrong, f"{len(wrong)} answers from the wrong mapping, e.g. {wrong[:3]}"

    def summary(self):
        udp = sum(1 for k in self.sent if k[0] == "udp")
        return (f"{len(self.sent)} queries ({udp} UDP, {len(self.sent) - udp} TCP on "
                f"{self.tcp_connects} connections, {self.cut_off} closed as a window was sent)")


@pytest.fixture
def load():
    made = []

    def start(port, **kw):
        made.append(Load(port, **kw).start())
        return made[-1]

    yield start
    for l in made:
        if not l.stopping.is_set():
            l.stop()


# ---------------------------------------------------------------------------- tests


def test_twenty_replaces_under_load(fleet, load, sockdir, tmp_path):
    """20 replaces in a row, alternating two binaries and two mappings: not a query lost,
    no TCP connection closed before its replies, and the answers switch each time."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    second = tmp_path / "svcmapd-second"
    shutil.copy2(svcmapd_path(), second)
    binaries, addrs = [svcmapd_path(), second], ["10.0.0.1", "10.0.0.2"]
    cur = fleet.start(mapping(port, sock, addrs[0]))
    fleet.wait_answering(cur, port)
    l = load(port)
    time.sleep(0.3)
    switches, since = [], time.monotonic()
    for i in range(1, 21):
        began = time.monotonic()
        switches.append((since, began, addrs[(i - 1) % 2]))
        cur = fleet.replace(cur, mapping(port, sock, addrs[i % 2]), binary=binaries[i % 2])
        since = time.monotonic()
        time.sleep(0.25)
    l.stop()
    switches.append((since, time.monotonic(), addrs[20 % 2]))
    l.check_clean()
    l.check_switches(switches)
    log = fleet.log(cur)
    assert "replace: took over from svcmapd pid" in log, log
    print(l.summary())


def test_open_connection_finishes_then_closes(fleet, sockdir):
    """A connection open to the old svcmapd goes on being answered after the hand-over, a
    query it was in the middle of sending included; then it ends with a FIN, not a reset,
    and the old svcmapd exits 0."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    old = fleet.start(mapping(port, sock, "10.0.0.1"))
    fleet.wait_answering(old, port)
    c = conftest.tcp_connect(port)
    q = [conftest.frame(make_query(NAME, qid=i).to_wire()) for i in (1, 2)]
    c.sendall(q[0])
    assert a_record(conftest.tcp_read_msg(c)) == "10.0.0.1"
    c.sendall(q[1][:5])   # the second query, begun
    new = fleet.start(mapping(port, sock, "10.0.0.2"), "--replace")
    deadline = time.monotonic() + 10 * SLOW
    while "draining, then exiting" not in fleet.log(old):
        assert time.monotonic() < deadline, fleet.log(old)
        time.sleep(0.01)
    assert old.poll() is None, "the old svcmapd did not wait for its connection"
    fleet.wait_answering(new, port, "10.0.0.2")
    c.sendall(q[1][5:])
    w = conftest.tcp_read_msg(c)
    assert struct.unpack("!H", w[:2])[0] == 2 and a_record(w) == "10.0.0.1"
    assert c.recv(1) == b"", "no FIN after the last reply"   # a reset would raise
    c.close()
    assert old.wait(10 * SLOW) == 0, fleet.log(old)
    assert addresses(conftest.ask(port, NAME, tcp=True)) == ["10.0.0.2"]


def test_plain_restart_loses_queries(fleet, load, sockdir):
    """The same load across a stop and a start: queries are lost. What the load counts is
    what --replace spares."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    cur = fleet.start(mapping(port, sock, "10.0.0.1"))
    fleet.wait_answering(cur, port)
    l = load(port)
    time.sleep(0.3)
    for _ in range(3):
        assert stop_process(cur) == 0
        cur = fleet.start(mapping(port, sock, "10.0.0.1"))
        fleet.wait_answering(cur, port)
        time.sleep(0.2)
    l.stop()
    assert l.lost() or l.refused, "a restart lost nothing: the load cannot tell"


def test_a_broken_file_changes_nothing(fleet, load, sockdir):
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    old = fleet.start(mapping(port, sock, "10.0.0.1"))
    fleet.wait_answering(old, port)
    l = load(port)
    time.sleep(0.2)
    bad = fleet.start(mapping(port, sock, "10.0.0.300"), "--replace")
    assert bad.wait(10 * SLOW) == 1, fleet.log(bad)
    log = fleet.log(bad)
    assert "bad IPv4 address '10.0.0.300'" in log and "cannot replace: 1 error" in log, log
    time.sleep(0.2)
    l.stop()
    l.check_clean()
    assert old.poll() is None
    assert "replace" not in fleet.log(old), "the old svcmapd was asked: " + fleet.log(old)
    assert conftest.ask(port, NAME).answer[0][0].address == "10.0.0.1"


@pytest.mark.parametrize("counts", [(2, 3, 1), (1, 2, 2)])
def test_another_workers_count(fleet, load, sockdir, counts):
    """Workers 2 -> 3 -> 1 (the group is joined by a new socket, then one worker reads all
    three) and 1 -> 2 -> 2 (a socket without SO_REUSEPORT is shared): nothing lost, and
    every socket the kernel sends queries to stays read."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    cur = fleet.start(mapping(port, sock, "10.0.0.1", workers=counts[0]))
    fleet.wait_answering(cur, port)
    assert len(held_sockets(cur.pid, "udp", port)) == counts[0], "one socket per worker"
    assert len(held_sockets(cur.pid, "tcp", port, "0A")) == counts[0]
    l = load(port)
    time.sleep(0.2)
    for n in counts[1:]:
        cur = fleet.replace(cur, mapping(port, sock, "10.0.0.1", workers=n))
        time.sleep(0.3)
    l.stop()
    l.check_clean()
    want = max(counts) if counts[0] > 1 else 1
    assert len(held_sockets(cur.pid, "udp", port)) == want, fleet.log(cur)
    assert len(held_sockets(cur.pid, "tcp", port, "0A")) == want


def test_listen_changes(fleet, sockdir):
    """An address both files listen on is taken over (the same socket), a new one is bound,
    one the new file drops is closed once the old svcmapd is gone."""
    keep, drop, new = free_port(), free_port(), free_port()
    sock = os.path.join(sockdir, "c.sock")
    old = fleet.start(mapping(0, sock, "10.0.0.1",
                              listen=f"127.0.0.1:{keep}, 127.0.0.1:{drop}"))
    fleet.wait_answering(old, keep)
    before = {r[9] for r in held_sockets(old.pid, "udp", keep)}
    cur = fleet.replace(old, mapping(0, sock, "10.0.0.2",
                                     listen=f"127.0.0.1:{keep}, 127.0.0.1:{new}"))
    assert {r[9] for r in held_sockets(cur.pid, "udp", keep)} == before, "not the same sockets"
    for port in (keep, new):
        assert addresses(conftest.ask(port, NAME)) == ["10.0.0.2"]
        assert addresses(conftest.ask(port, NAME, tcp=True)) == ["10.0.0.2"]
    assert conftest.udp_exchange(make_query(NAME).to_wire(), drop, timeout=0.3) is None
    assert conftest.port_free("127.0.0.1", drop) == drop, "the dropped address is still bound"
    assert f"replace: udp 127.0.0.1:{drop} is not in the mapping file: closed" in fleet.log(cur)


def test_a_new_svcmapd_that_gives_up(fleet, load, sockdir):
    """The new one fails after it has the sockets (an HTTP address it cannot bind): it exits
    3, the old one serves on without a query lost, and reloads again."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    old = fleet.start(mapping(port, sock, "10.0.0.1"))
    fleet.wait_answering(old, port)
    l = load(port)
    time.sleep(0.2)
    try:
        bad = fleet.start(mapping(port, sock, "10.0.0.2",
                                  extra=f"[http]\nhealth = 127.0.0.1:{busy.getsockname()[1]}\n"),
                          "--replace")
        assert bad.wait(15 * SLOW) == 3, fleet.log(bad)
    finally:
        busy.close()
    time.sleep(0.3)
    l.stop()
    l.check_clean()
    assert old.poll() is None
    assert "replace: the new svcmapd did not take over: serving on" in fleet.log(old)
    old.config.write_text(mapping(port, sock, "10.0.0.3"))
    rc, out, err = run_ctl(["-s", sock, "reload"])
    assert rc == 0, (out, err)
    assert addresses(conftest.ask(port, NAME)) == ["10.0.0.3"]


def test_serial_and_state_dir_carry_over(fleet, sockdir):
    """The same answers keep the old serial; others get a later one, never an earlier one.
    The state-dir's copy is the new one's mapping."""
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    state = os.path.join(sockdir, "state")
    os.mkdir(state)
    extra = f"state-dir = {state}\n"
    old = fleet.start(mapping(port, sock, "10.0.0.1", extra=extra))
    fleet.wait_answering(old, port)
    serial = conftest.ask(port, "cluster.local", "SOA").answer[0][0].serial
    wait_copy(state, serial)
    time.sleep(1.1)   # a new load time
    cur = fleet.replace(old, mapping(port, sock, "10.0.0.1", extra=extra + "; a comment\n"))
    assert conftest.ask(port, "cluster.local", "SOA").answer[0][0].serial == serial
    cur = fleet.replace(cur, mapping(port, sock, "10.0.0.2", extra=extra))
    later = conftest.ask(port, "cluster.local", "SOA").answer[0][0].serial
    assert later > serial
    text = wait_copy(state, later)
    assert "x = 10.0.0.2" in text


def test_replace_needs_a_control_socket_and_a_server(fleet, sockdir, tmp_path):
    port, sock = free_port(), os.path.join(sockdir, "c.sock")
    cfg = tmp_path / "none.ini"
    cfg.write_text(inject_upstream(f"[server]\nlisten = 127.0.0.1:{port}\n[namespace a]\n"
                                   "x = 10.0.0.1\n"))
    rc, _, err = conftest.run_cli(["--replace", "-c", str(cfg)])
    assert rc == 2 and "names no [control] socket" in err, err
    cfg.write_text(mapping(port, sock, "10.0.0.1"))
    rc, _, err = conftest.run_cli(["--replace", "-c", str(cfg)])
    assert rc == 3 and "no svcmapd to take over from at" in err, err
    rc, _, err = conftest.run_cli(["--replace", "-t", "-c", str(cfg)])
    assert rc == 2, err
    rc, _, err = run_ctl(["-s", sock, "replace"])
    assert rc == 2 and "svcmapd --replace" in err, err

