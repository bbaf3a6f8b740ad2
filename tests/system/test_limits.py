"""test_limits.py -- the [server] limits of the README and what svcmapd does with its
privileges.

udp-max-size, tcp-idle-timeout against tcp-message-timeout, tcp-pipeline,
tcp-max-connections (also changed by a reload), `-t` on every out-of-range value,
and `user =`: the privilege drop seen in /proc, reloads as that user, a file it cannot
read, and starting unprivileged with CAP_NET_BIND_SERVICE (setpriv).
"""

import os
import random
import select
import shutil
import socket
import tempfile
import time
from pathlib import Path

import dns.rcode
import pytest

from conftest import (SLOW, Server, addresses, check_answer, check_header, check_truncated,
                      error_lines, frame, make_query, parse, port_free, rrlines, run_cli,
                      stop_and_report, svc, tcp_connect, tcp_read_msg)

GOOD = svc("mysql.test-2")
GOOD_ANSWER = [f"{GOOD} 5 IN A 192.168.1.10"]


def config(server_extra="", listen="127.0.0.1:@PORT@", mysql="192.168.1.10"):
    return f"""[server]
listen = {listen}
{server_extra}

[namespace test-2]
mysql  = {mysql}
mid    = {addresses("10.15", 15)}
big100 = {addresses("10.100", 100)}
big200 = {addresses("10.200", 200)}
big300 = {addresses("10.30", 300)}
"""


def closed_within(sock, timeout):
    """Seconds until the peer closed the connection (EOF or reset), or None if it is
    still open after timeout; fails if data arrives."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - t0
    except socket.timeout:
        return None
    assert data == b"", f"unexpected data {data!r}"
    return time.monotonic() - t0


def close_times(conns, t0, limit):
    """{label: seconds from t0 until the peer closed it} for the connections of
    conns ({socket: label}) that close within limit seconds of t0."""
    left, closed = dict(conns), {}
    while left and time.monotonic() - t0 < limit:
        ready, _, _ = select.select(list(left), [], [], 0.1)
        for c in ready:
            assert closed_within(c, 0.1) is not None, "readable but neither data nor close"
            closed[left.pop(c)] = time.monotonic() - t0
    return closed


def query_on(sock, qname, rdtype="A", **kw):
    q = make_query(qname, rdtype, **kw)
    sock.sendall(frame(q.to_wire()))
    w = tcp_read_msg(sock)
    r = parse(w)
    r.query, r.query_wire, r.wire = q, q.to_wire(), w
    return r


# --------------------------------------------------------------------------- udp-max-size


@pytest.mark.parametrize("udp_max", [512, 1232, 2048, 4096])
def test_udp_max_size(svcmapd, udp_max):
    """The UDP limit is 512 without EDNS, else the client's size (at least 512) capped at
    udp-max-size; an answer that fits is sent whole, one that does not gets TC=1 and
    no records; our OPT announces udp-max-size."""
    s = svcmapd(config(f"udp-max-size = {udp_max}"))
    for qname in (GOOD, svc("mid.test-2"), svc("big100.test-2"), svc("big200.test-2"),
                  svc("big300.test-2")):
        for payload in (None, 0, 512, 1000, 1500, 2048, 4096, 65535):
            kw = {} if payload is None else {"edns": 0, "payload": payload}
            full = s.ask(qname, "A", tcp=True, **kw)
            limit = 512 if payload is None else min(max(payload, 512), udp_max)
            r = s.ask(qname, "A", **kw)
            what = f"{qname} with EDNS size {payload}, udp-max-size {udp_max}"
            assert len(r.wire) <= limit, f"{what}: {len(r.wire)} bytes, limit {limit}"
            if len(full.wire) <= limit:
                check_header(r, "NOERROR")
                assert rrlines(r.answer) == rrlines(full.answer), f"{what}: not the full answer"
                assert len(r.wire) == len(full.wire)
            else:
                check_truncated(r, full)
                assert len(r.wire) + 16 > limit, f"{what}: another A record would fit"
            if payload is not None:
                assert r.payload == udp_max, f"{what}: OPT announces {r.payload}"


# --------------------------------------------------------------------------- TCP timeouts

TIMEOUTS = "tcp-idle-timeout = 4\ntcp-message-timeout = 1"


def test_idle_timeout_not_message_timeout(svcmapd):
    """idle 4 s, message 1 s: a connection idle between messages (after a query, or
    never used) stays open well past 1 s and closes after about 4 s."""
    s = svcmapd(config(TIMEOUTS))
    used, unused = tcp_connect(s.port), tcp_connect(s.port)
    with used, unused:
        check_answer(query_on(used, GOOD), GOOD_ANSWER)
        t0 = time.monotonic()
        closed = close_times({used: "after a query", unused: "never used"}, t0, 9.0)
        for what in ("after a query", "never used"):
            assert what in closed, f"idle connection ({what}) still open 9 s later (idle 4 s)"
            assert 2.5 <= closed[what] <= 7.5, (
                f"idle connection ({what}) closed after {closed[what]:.2f}s; expected about "
                f"4 s (tcp-idle-timeout), not 1 s (tcp-message-timeout)")


def test_message_timeout_not_idle_timeout(svcmapd):
    """idle 4 s, message 1 s: a connection stuck inside a message (a new one, or one
    that had a query answered first) closes after about 1 s."""
    s = svcmapd(config(TIMEOUTS))
    fresh, used = tcp_connect(s.port), tcp_connect(s.port)
    with fresh, used:
        check_answer(query_on(used, GOOD), GOOD_ANSWER)
        partial = frame(make_query(GOOD, "A").to_wire())[:15]
        fresh.sendall(partial)
        used.sendall(partial)
        t0 = time.monotonic()
        closed = close_times({fresh: "new connection", used: "after a query"}, t0, 6.0)
        for what in ("new connection", "after a query"):
            assert what in closed, f"connection stuck mid-message ({what}) still open 6 s later"
            assert 0.5 <= closed[what] <= 2.8, (
                f"stuck mid-message ({what}): closed after {closed[what]:.2f}s; expected "
                f"about 1 s (tcp-message-timeout), not 4 s (tcp-idle-timeout)")


def test_message_timeout_is_a_deadline(svcmapd):
    """README: tcp-message-timeout is the time a client 'has to send the rest of a
    message once it has begun'.  A client trickling one byte every 0.4 s (never 1 s of
    silence) must still be closed about 1 s after the message began, not when it ends
    (20 s later)."""
    s = svcmapd(config(TIMEOUTS))
    data = frame(make_query(GOOD, "A").to_wire())
    with tcp_connect(s.port) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.monotonic()
        closed_at = None
        for i in range(len(data) - 1):
            try:
                c.sendall(data[i:i + 1])
            except (ConnectionResetError, BrokenPipeError):
                closed_at = time.monotonic() - t0
                break
            if select.select([c], [], [], 0.4)[0]:
                assert closed_within(c, 0.1) is not None
                closed_at = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 6.0:
                break
        assert closed_at is not None, (
            f"a message trickled one byte per 0.4 s was still being read "
            f"{time.monotonic() - t0:.1f}s after it began (tcp-message-timeout = 1)")
        assert closed_at <= 3.0, f"closed {closed_at:.2f}s after the message began"


# --------------------------------------------------------------------------- tcp-pipeline


@pytest.mark.parametrize("pipeline", [1, 2])
def test_pipeline_limit_answers_all(svcmapd, pipeline):
    """tcp-pipeline = 1 or 2 and 10 queries in one write: all 10 answered (over several
    turns of the loop), in order, each right."""
    s = svcmapd(config(f"tcp-pipeline = {pipeline}"))
    names = [GOOD, svc("nothing.test-2"), svc("mid.test-2"), "example.com."]
    queries = [make_query(names[i % 4], "A", qid=0x7100 + i) for i in range(10)]
    with tcp_connect(s.port) as c:
        c.sendall(b"".join(frame(q.to_wire()) for q in queries))
        replies = [parse(tcp_read_msg(c)) for _ in range(10)]
        assert [r.id for r in replies] == [q.id for q in queries]
        for r, q in zip(replies, queries):
            want = {0: "NOERROR", 1: "NXDOMAIN", 2: "NOERROR", 3: "REFUSED"}[q.id % 4]
            assert dns.rcode.to_text(r.rcode()) == want
            assert r.question[0].name == q.question[0].name
        assert len(replies[0].answer[0]) == 1 and len(replies[2].answer[0]) == 15
        check_answer(query_on(c, GOOD), GOOD_ANSWER)      # the connection still serves


# --------------------------------------------------------------------------- tcp-max-connections


def refused_at_once(s):
    """A new connection is closed at once, without an answer."""
    c = tcp_connect(s.port)
    with c:
        try:
            c.sendall(frame(make_query(GOOD, "A").to_wire()))
        except (ConnectionResetError, BrokenPipeError):
            return True
        t = closed_within(c, 2.0 * SLOW)
        return t is not None and t <= 1.0 * SLOW


def test_max_connections_and_reload(svcmapd):
    """tcp-max-connections = 3: three connections are served, a fourth is closed at
    once; after one closes, a new one is served.  A reload to 5 applies at once."""
    s = svcmapd(config("tcp-max-connections = 3\ntcp-idle-timeout = 30"))
    held = [tcp_connect(s.port) for _ in range(3)]
    try:
        for c in held:
            check_answer(query_on(c, GOOD), GOOD_ANSWER)
        assert refused_at_once(s), "a 4th connection with tcp-max-connections = 3 was kept"
        check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)       # UDP unaffected
        held.pop().close()
        deadline = time.monotonic() + 3 * SLOW
        while True:
            try:
                with tcp_connect(s.port) as c:
                    check_answer(query_on(c, GOOD), GOOD_ANSWER)
                break
            except (EOFError, ConnectionResetError, BrokenPipeError):
                assert time.monotonic() < deadline, "no capacity back after a close"
                time.sleep(0.1)
        outcome, text = s.reload(config("tcp-max-connections = 5\ntcp-idle-timeout = 30"))
        assert outcome == "ok", text
        while len(held) < 5:
            c = tcp_connect(s.port)
            held.append(c)
            check_answer(query_on(c, GOOD), GOOD_ANSWER)
        assert refused_at_once(s), "a 6th connection with tcp-max-connections = 5 was kept"
    finally:
        for c in held:
            c.close()


# --------------------------------------------------------------------------- -t ranges

RANGES = [
    # (section, key, too small or None, too big, smallest, largest)
    ("server", "ttl", None, "3601", "0", "3600"),
    ("server", "tcp-idle-timeout", "0", "3601", "1", "3600"),
    ("server", "tcp-max-connections", "0", "65536", "1", "65535"),
    ("server", "workers", "0", "257", "1", "256"),
    ("server", "reload", "0", "86401", "1", "86400"),
    ("server", "tcp-message-timeout", "0", "61", "1", "60"),
    ("server", "tcp-pipeline", "0", "1001", "1", "1000"),
    ("server", "udp-max-size", "511", "4097", "512", "4096"),
    ("upstream", "timeout", "0", "31", "1", "30"),
    ("upstream", "cache-size", "15", "10000001", "16", "10000000"),
    ("upstream", "max-stale", None, "259201", "0", "259200"),
    ("upstream", "negative-ttl", None, "301", "0", "300"),
    ("http", "lameduck", None, "61", "0", "60"),
]
BAD_VALUES = [(sec, key, v) for sec, key, lo, hi, _, _ in RANGES for v in (lo, hi) if v] + [
    ("server", "ttl", "-1"), ("server", "udp-max-size", "99999999999999999999"),
    ("server", "reload", "25h"), ("server", "reload", "1441m"), ("server", "reload", "0s"),
    ("server", "tcp-pipeline", "1e3"), ("server", "workers", "-1")]


def range_config(section, key, value):
    """A valid file with `key = value` in its section, on a line of its own."""
    sections = {"server": ["listen = 127.0.0.1:5353"], "upstream": ["servers = none"],
                "http": []}
    sections[section].append(f"{key} = {value}")
    text = "; range check\n"
    for name, lines in sections.items():
        text += f"[{name}]\n" + "".join(line + "\n" for line in lines) + "\n"
    return text + "[namespace a]\nb = 10.0.0.1\n"


@pytest.mark.parametrize("section,key,value", BAD_VALUES,
                         ids=[f"{k}={v}" for _, k, v in BAD_VALUES])
def test_check_rejects_out_of_range(tmp_path, svcmapd_bin, section, key, value):
    path = tmp_path / "range.ini"
    text = range_config(section, key, value)
    path.write_text(text)
    line = text.splitlines().index(f"{key} = {value}") + 1
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1, f"{key} = {value}: -t exit {rc}, expected 1; stderr:\n{err}"
    assert error_lines(err, path) == [line], (
        f"{key} = {value}: expected one error at {path}:{line}, got:\n{err}")
    assert key in err, f"the error does not name {key}:\n{err}"


@pytest.mark.parametrize("section,key,small,big", [(r[0], r[1], r[4], r[5]) for r in RANGES],
                         ids=[r[1] for r in RANGES])
def test_check_accepts_range_ends(tmp_path, svcmapd_bin, section, key, small, big):
    for value in (small, big):
        path = tmp_path / "range.ini"
        path.write_text(range_config(section, key, value))
        rc, out, err = run_cli(["-t", "-c", str(path)])
        assert rc == 0, f"{key} = {value} rejected (exit {rc}):\n{err}"


def test_check_rejects_service_ttl_out_of_range(tmp_path, svcmapd_bin):
    path = tmp_path / "ttl.ini"
    path.write_text("[server]\nlisten = 127.0.0.1:5353\n\n[namespace a]\nb = 10.0.0.1 ttl=3601\n")
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1 and error_lines(err, path) == [5], err


# --------------------------------------------------------------------------- privileges


def need_root():
    assert os.geteuid() == 0, "the privilege tests run svcmapd as root: run them as root"


@pytest.fixture
def privdir():
    """A directory nobody can read (755), outside pytest's 700 tmp tree; removed after."""
    d = Path(tempfile.mkdtemp(prefix="svcmapd-priv-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def servers(svcmapd_bin, privdir):
    """Factory: servers(config, prefix=(), port=None) -> a started Server in privdir.
    port: a fixed 127.0.0.1 port written into the config (for ports below 1024).
    All are stopped by PID at teardown and checked for sanitizer/valgrind reports."""
    started = []

    def start(config_text, prefix=(), port=None, wait=True):
        if port is not None:
            config_text = config_text.replace("@PORT@", str(port))
        s = Server(svcmapd_bin, privdir, config_text, name=f"svcmapd-{len(started) + 1}.ini",
                   prefix=prefix)
        started.append(s)
        if port is not None:
            s.port = port
        os.chmod(s.config_path, 0o644)
        if wait:
            s.wait_ready()
        return s

    yield start
    stop_and_report(started)


def proc_ids(pid):
    """{task id: {'Uid': [...], 'Gid': [...], 'Groups': [...], 'CapEff': int, ...}} for
    every thread of pid."""
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        fields = {}
        for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                fields[key] = value.split()
            elif key.startswith("Cap"):
                fields[key] = int(value.strip(), 16)
        out[task] = fields
    return out


def check_dropped(s, uid="65534", gid="65534"):
    tasks = proc_ids(s.proc.pid)
    assert len(tasks) >= 2, f"expected the main thread and workers, got {sorted(tasks)}"
    for task, f in tasks.items():
        assert f["Uid"] == [uid] * 4, f"thread {task}: Uid {f['Uid']}, expected {uid} x4"
        assert f["Gid"] == [gid] * 4, f"thread {task}: Gid {f['Gid']}, expected {gid} x4"
        assert f["Groups"] == [], f"thread {task}: supplementary groups {f['Groups']} kept"
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            assert f[cap] == 0, f"thread {task}: {cap} {f[cap]:#x}, expected 0"


def low_port():
    """A 127.0.0.1 port in 900-999 free for UDP and TCP (tried in random order)."""
    ports = list(range(900, 1000))
    random.shuffle(ports)
    for port in ports:
        if port_free("127.0.0.1", port):
            return port
    pytest.fail("no port free in 900-999 on 127.0.0.1")


def test_user_nobody_drops_everything(servers):
    """As root with user = nobody on a port below 1024: bound first, then every thread
    runs as 65534/65534 with no groups and no capabilities; it answers; a SIGHUP reload
    (the file is readable by nobody) changes an address."""
    need_root()
    port = low_port()
    s = servers(config("user = nobody"), port=port)
    assert "running as user nobody" in s.log(), s.log()
    assert "running as root" not in s.log()
    check_dropped(s)
    check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)
    check_answer(s.ask(GOOD, "A", tcp=True), GOOD_ANSWER)
    s.write_config(config("user = nobody", mysql="192.168.1.99").replace("@PORT@", str(port)))
    os.chmod(s.config_path, 0o644)
    outcome, text = s.reload()
    assert outcome == "ok", f"reload as nobody failed:\n{text}"
    check_answer(s.ask(GOOD, "A"), [f"{GOOD} 5 IN A 192.168.1.99"])
    check_dropped(s)


def test_unreadable_file_reload_fails_keeps_serving(servers):
    """user = nobody, then the file becomes root's alone (600): a reload fails with an
    error that names the file and the reason; the old data keeps serving; once readable
    again, a reload works."""
    need_root()
    s = servers(config("user = nobody"))
    check_dropped(s)
    s.write_config(config("user = nobody", mysql="192.168.1.77"))
    os.chmod(s.config_path, 0o600)
    outcome, text = s.reload()
    assert outcome == "failed", f"reload of an unreadable file did not fail:\n{text}"
    assert s.config_path.name in text and "Permission denied" in text, (
        f"the error should name the file and the reason:\n{text}")
    check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)
    assert s.proc.poll() is None
    os.chmod(s.config_path, 0o644)
    outcome, text = s.reload()
    assert outcome == "ok", text
    check_answer(s.ask(GOOD, "A"), [f"{GOOD} 5 IN A 192.168.1.77"])


def test_user_numeric(servers):
    need_root()
    s = servers(config("user = 65534:65534"))
    check_dropped(s)
    check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)
    check_answer(s.ask(GOOD, "A", tcp=True), GOOD_ANSWER)


def test_user_unknown_rejected_by_check(tmp_path, svcmapd_bin):
    path = tmp_path / "user.ini"
    text = config("user = nosuchuser").replace("@PORT@", "5353")
    path.write_text(text)
    line = text.splitlines().index("user = nosuchuser") + 1
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 1, f"-t exit {rc}:\n{err}"
    assert error_lines(err, path) == [line], err
    assert "nosuchuser" in err


def test_root_without_user_warns(svcmapd):
    need_root()
    s = svcmapd(config())
    s.wait_log("running as root")
    check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)


def test_unprivileged_with_net_bind_service(servers):
    """Started as nobody with only CAP_NET_BIND_SERVICE (setpriv, ambient), svcmapd binds
    a port below 1024 on 127.0.0.1 and answers, as nobody, with that one capability."""
    need_root()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    port = low_port()
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    s = servers(config(), prefix=prefix, port=port)
    check_answer(s.ask(GOOD, "A"), GOOD_ANSWER)
    check_answer(s.ask(GOOD, "A", tcp=True), GOOD_ANSWER)
    for task, f in proc_ids(s.proc.pid).items():
        assert f["Uid"] == ["65534"] * 4 and f["Gid"] == ["65534"] * 4, (task, f)
        assert f["CapEff"] == 1 << 10, f"thread {task}: CapEff {f['CapEff']:#x}"
    assert "running as root" not in s.log()
