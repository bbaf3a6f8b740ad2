"""test_control.py -- SPEC 7: the control socket and svcmapctl: status, reload and its outcome,
health, stop, the socket's mode and owner, svcmapctl's exit statuses, and clients that are
silent, send garbage or a megabyte, come too many at once, or leave."""

import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import time

import pytest

import conftest
from conftest import run_ctl, stop_process, svc
from test_ops import addresses, http_status, scrape

SLOW = getattr(conftest, "SLOW", 1.0)


@pytest.fixture
def sockdir():
    """A short directory for sockets: a unix socket's path holds at most 107 bytes, and
    pytest's tmp_path can be longer than that."""
    d = tempfile.mkdtemp(prefix="svcctl-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def mapping(sock, server="", services="x = 10.0.0.1\n", sections=""):
    return (f"[server]\nlisten = 127.0.0.1:@PORT@\n{server}\n"
            f"[control]\nsocket = {sock}\n{sections}\n[namespace a]\n{services}")


def services(n, prefix="s"):
    return "".join(f"{prefix}{i} = 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}\n"
                   for i in range(n))


def ctl(sock, *args, timeout=None):
    return run_ctl(["-s", sock, *args], timeout=timeout)


def status_fields(out):
    fields = {}
    for line in out.splitlines():
        k, sep, v = line.partition(": ")
        assert sep, f"status line without 'key: value': {line!r}"
        fields[k] = v
    return fields


def talk(sock, data, *, shut=False, timeout=10.0):
    """Connect to sock, send data, and read until the server closes: the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout * SLOW)
        c.connect(sock)
        if data:
            try:
                c.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        if shut:
            c.shutdown(socket.SHUT_WR)
        return read_all(c)


def read_all(c):
    out = b""
    while True:
        try:
            chunk = c.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


# ---------------------------------------------------------------- status, health, stop


def test_status(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock, services="x = 10.0.0.1\ny = 10.0.0.2:80\n"))
    rc, out, err = ctl(sock, "status")
    assert rc == 0 and err == "", (rc, out, err)
    f = status_fields(out)
    version = os.popen(f"{conftest.svcmapd_path()} -V").read().split()[1]
    assert f["version"] == version
    assert f["pid"] == str(s.proc.pid)
    assert re.fullmatch(r"\d+ s", f["uptime"]), f
    assert f["state"] == "serving"
    assert f["mapping"] == str(s.config_path)
    assert f["last good copy"] == "off (no state-dir)"
    assert f["zone"] == "cluster.local"
    assert f["serial"] == str(s.serial())
    assert f["services"] == "2"
    assert int(f["records"]) > 2
    assert f["last reload"] == "none since start"

    outcome, new = s.reload(mapping(sock, services="x = 10.0.0.9\n"))
    assert outcome == "ok", new
    f = status_fields(ctl(sock, "status")[1])
    line = [l for l in new.splitlines() if "reload: ok" in l][0]
    assert f["last reload"] == line[line.index("reload: ok"):], (f, line)
    assert f["services"] == "1" and f["serial"] == str(s.serial())


def test_health_without_checks(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    svcmapd(mapping(sock))
    assert ctl(sock, "health") == (0, "no checked targets\n", "")


def test_stop_as_sigterm(svcmapd, sockdir):
    """stop replies, then svcmapd stops as on SIGTERM: lameduck first (/ready 503, DNS
    answered), exit 0, the socket file gone."""
    sock = os.path.join(sockdir, "c.sock")
    port = conftest.free_port()
    s = svcmapd(mapping(sock, sections=f"[http]\nready = 127.0.0.1:{port}\nlameduck = 2\n"))
    assert http_status(port, "/ready") == 200
    rc, out, err = ctl(sock, "stop")
    assert (rc, out, err) == (0, "stopping\n", ""), (rc, out, err)
    s.wait_log("svcmapctl stop: going into lameduck mode for 2s")
    assert http_status(port, "/ready") == 503
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"], "lameduck: DNS still answered"
    f = status_fields(ctl(sock, "status")[1])
    assert f["state"] == "lameduck", f
    assert s.proc.wait(10 * SLOW) == 0
    assert not os.path.exists(sock), "the socket file stays after svcmapd stopped"


# ---------------------------------------------------------------- the socket


def test_socket_mode_owner_and_removal(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    assert s.stop() == 0
    assert not os.path.exists(sock)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_socket_given_to_the_user(svcmapd, sockdir):
    """Made by root before privileges are dropped, the socket belongs to [server] user,
    who can then use it."""
    os.chmod(sockdir, 0o755)
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock, server="user = 65534:65534"))
    s.wait_log("running as user 65534:65534")
    st = os.lstat(sock)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)
    pid = os.fork()
    if pid == 0:  # the user svcmapd runs as can talk to it
        try:
            os.setgid(65534)
            os.setuid(65534)
            os._exit(0 if "state: serving" in talk(sock, b"status\n") else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0


def test_stale_socket_is_replaced(svcmapd, sockdir):
    """A socket file nothing answers on (a svcmapd killed with SIGKILL) is replaced."""
    sock = os.path.join(sockdir, "c.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(sock)
    dead.close()
    s = svcmapd(mapping(sock))
    assert "removing a socket nothing answers on" in s.log()
    assert ctl(sock, "status")[0] == 0


def test_live_socket_or_other_file_is_not_replaced(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock)
    live.listen(1)
    try:
        s = svcmapd(mapping(sock), wait=False)
        assert s.proc.wait(10 * SLOW) == 3
        assert "another process (a svcmapd still running?) answers on it" in s.log()
        assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    finally:
        live.close()
    os.unlink(sock)
    with open(sock, "w") as f:
        f.write("keep me\n")
    s = svcmapd(mapping(sock), wait=False)
    assert s.proc.wait(10 * SLOW) == 3
    assert "exists and is not a socket: not replaced" in s.log()
    assert open(sock).read() == "keep me\n"


def test_socket_in_a_missing_directory(svcmapd, sockdir):
    s = svcmapd(mapping(os.path.join(sockdir, "nope", "c.sock")), wait=False)
    assert s.proc.wait(10 * SLOW) == 3
    assert "control: cannot listen on" in s.log()


# ---------------------------------------------------------------- reload


def test_reload_applied(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    s.write_config(mapping(sock, services="x = 10.0.0.2\ny = 10.0.0.3\n"))
    rc, out, err = ctl(sock, "reload")
    assert rc == 0 and err == "", (rc, out, err)
    assert re.fullmatch(r"reload: ok, 2 services, \d+ records, 1 added, 0 removed, 1 changed, "
                        rf"serial {s.serial()}, 2 compiled, [\d.]+ ms\n", out), out
    assert out.strip() in s.log(), "the line svcmapctl prints is the line logged"
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.2"]


def test_reload_rejected_prints_every_error(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    serial = s.serial()
    s.write_config(mapping(sock, services="x = 10.0.0.400\ny = 10.0.0.1:99999\nz = a..b\n"
                                          "w = 10.0.0.2 srv=_h._tcp\n"))
    rc, out, err = ctl(sock, "reload")
    assert rc == 1 and out == "", (rc, out, err)
    path = str(s.config_path)
    lines = err.splitlines()
    want = [f"{path}:{s.line_of('x = ')}: error: bad IPv4 address '10.0.0.400'",
            f"{path}:{s.line_of('y = ')}: error: port 99999 out of range (1-65535)",
            f"{path}:{s.line_of('z = ')}: error: "]
    for w in want:
        assert any(l.startswith(w) for l in lines), f"{w!r} not in:\n{err}"
    assert any(l.startswith(f"{path}:{s.line_of('w = ')}: warning: ") for l in lines), err
    assert lines[-1] == f"reload: failed (3 errors in {path}), still serving serial {serial}"
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"], "a rejected file changed the answers"


def test_reload_of_an_unreadable_file(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    os.unlink(s.config_path)
    rc, out, err = ctl(sock, "reload")
    assert rc == 1, (rc, out, err)
    assert f"{s.config_path}: error: cannot open: No such file or directory" in err
    assert err.splitlines()[-1].startswith("reload: failed (1 error in ")


def test_reload_held(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock, services=services(40)))
    rc, out, err = ctl(sock, "reload")
    assert rc == 0, err
    s.write_config(mapping(sock, services=services(5)))
    rc, out, err = ctl(sock, "reload")
    assert rc == 1 and out == "", (rc, out, err)
    assert err.startswith("reload: held: would remove 35 of 40 services"), err
    assert "confirm-removal = 35" in err
    assert addresses(s.ask(svc("s30.a"))) == ["10.0.0.31"]


def test_reload_asked_during_a_reload_waits_for_the_next(svcmapd, sockdir):
    """A reload asked for while one runs gets the outcome of the one that follows, which
    reads the file after the request: here the file written after the first began."""
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock, services=services(20000)))
    big = mapping(sock, services=services(150000, "b"), server="max-removal = 100")
    small = mapping(sock, services=services(3, "c"), server="max-removal = 100")
    s.write_config(big)
    os.kill(s.proc.pid, signal.SIGHUP)       # reload 1 reads the big file...
    time.sleep(0.05 * SLOW)
    s.write_config(small)                    # ... this is written while it compiles
    rc, out, err = ctl(sock, "reload")      # and this asks while it runs
    assert rc == 0, (rc, out, err)
    assert out.startswith("reload: ok, 3 services,"), (
        f"the reply is not of the reload that followed the request:\n{out}\n{s.log()[-2000:]}")
    outcomes = re.findall(r"reload: ok, (\d+) services", s.log())
    assert outcomes[-1] == "3", outcomes


def test_reload_waiting_when_svcmapd_stops(svcmapd, sockdir):
    """A client waiting for a reload while svcmapd stops is told it will not run (exit 3)
    rather than left hanging."""
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock, services=services(20000)))
    s.write_config(mapping(sock, services=services(150000, "b"), server="max-removal = 100"))
    os.kill(s.proc.pid, signal.SIGHUP)
    time.sleep(0.05 * SLOW)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(30 * SLOW)
        c.connect(sock)
        c.sendall(b"reload\n")
        time.sleep(0.1 * SLOW)
        os.kill(s.proc.pid, signal.SIGTERM)
        reply = read_all(c)
    assert reply == "reload: not applied: svcmapd is stopping\nexit 3\n" or \
        reply.startswith("reload: ok"), reply
    assert s.proc.wait(10 * SLOW) == 0


# ---------------------------------------------------------------- svcmapctl


def test_svcmapctl_against_a_stopped_server(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    rc, out, err = ctl(sock, "status")
    assert rc == 3 and out == "", (rc, out, err)
    assert f"cannot reach svcmapd at {sock}: No such file or directory" in err
    s = svcmapd(mapping(sock))
    assert ctl(sock, "status")[0] == 0
    stop_process(s.proc, signal.SIGKILL)     # the socket file stays, nothing answers
    assert os.path.exists(sock)
    rc, out, err = ctl(sock, "reload")
    assert rc == 3 and "Connection refused" in err, (rc, err)


def test_svcmapctl_reads_the_socket_from_the_file(svcmapd, sockdir):
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    rc, out, err = run_ctl(["-c", str(s.config_path), "status"])
    assert rc == 0 and "state: serving" in out, (rc, out, err)
    # the file has an error elsewhere: its socket is still found, and reload says why
    s.write_config(mapping(sock, services="x = 10.0.0.400\n"))
    rc, out, err = run_ctl(["-c", str(s.config_path), "reload"])
    assert rc == 1 and "bad IPv4 address '10.0.0.400'" in err, (rc, out, err)
    bad = os.path.join(sockdir, "none.ini")
    with open(bad, "w") as f:
        f.write("[namespace a]\nx = 10.0.0.1\n")
    rc, out, err = run_ctl(["-c", bad, "status"])
    assert rc == 2 and "gives no control socket" in err, (rc, err)


@pytest.mark.parametrize("args, message", [
    (["bogus"], "unknown command 'bogus'"),
    ([], "no COMMAND"),
    (["status", "reload"], "one COMMAND at a time"),
    (["-s", "/x", "-c", "/y", "status"], "-s and -c both name the socket"),
    (["-t", "0", "-s", "/x", "status"], "-t: '0' is not a number of seconds"),
    (["--nope"], "--help"),
])
def test_svcmapctl_usage(args, message):
    """Bad usage is exit 2, before any connection (no server runs here)."""
    rc, out, err = run_ctl(args)
    assert rc == 2 and message in err, (rc, out, err)


def test_svcmapctl_help_and_version():
    rc, out, err = run_ctl(["--help"])
    assert rc == 0 and "Usage: svcmapctl" in out
    for cmd in ("status", "reload", "health", "stop"):
        assert re.search(rf"^  {cmd}\b", out, re.M), cmd
    rc, out, err = run_ctl(["-V"])
    assert rc == 0 and re.fullmatch(r"svcmapctl \S+\n", out)


def test_svcmapctl_timeout(sockdir):
    """A server that never replies: exit 3 after -t seconds."""
    sock = os.path.join(sockdir, "mute.sock")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(sock)
    mute.listen(1)
    try:
        t0 = time.monotonic()
        rc, out, err = run_ctl(["-s", sock, "-t", "1", "status"], timeout=20)
        assert rc == 3 and "no reply from svcmapd" in err and "within 1 s" in err, (rc, err)
        assert time.monotonic() - t0 < 10
    finally:
        mute.close()


# ---------------------------------------------------------------- hostile clients



def test_clients_that_left_hold_no_place(svcmapd, sockdir):
    """Eight clients connect and leave while svcmapd is stopped (SIGSTOP), then one asks
    for `status`: all nine are accepted in one turn of the loop, before the ends of the
    eight are read. Those that left make room; the ninth is answered, not refused."""
    sock = os.path.join(sockdir, "c.sock")
    s = svcmapd(mapping(sock))
    os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(8):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock)
            c.close()
        asker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        asker.settimeout(10 * SLOW)
        asker.connect(sock)
        asker.sendall(b"status\n")
    finally:
        os.kill(s.proc.pid, signal.SIGCONT)
    with asker:
        reply = read_all(asker)
    assert reply.startswith("version: ") and reply.endswith("exit 0\n"), reply


def test_hostile_clients(svcmapd, sockdir):
    """Clients that say nothing, send garbage or a megabyte, come too many at once, or
    connect and leave: each is closed, refused ones are counted and logged, and nothing
    changes (no reload, no stop; DNS and the socket go on answering)."""
    sock = os.path.join(sockdir, "c.sock")
    port = conftest.free_port()
    s = svcmapd(mapping(sock, sections=f"[http]\nmetrics = 127.0.0.1:{port}\n"))
    serial = s.serial()

    # garbage: refused at once, before any newline
    reply = talk(sock, b"\x16\x03\x01\x00\xa5\x01\x00\x00")
    assert reply.startswith("error: not a command line: byte 1 is 0x16") and \
        reply.endswith("\nexit 2\n"), reply
    assert talk(sock, b"reload now\n") == "error: 'reload' takes no argument\nexit 2\n"
    assert talk(sock, b"restart\n").startswith("error: unknown command 'restart'")
    # replace from a client that is no svcmapd: it gets the lines (the descriptors are
    # dropped by its kernel), then leaves, or says something else than `answering`;
    # the hand-over is abandoned, and nothing changes
    reply = talk(sock, b"replace\n", shut=True)
    assert reply.startswith("replace: pid ") and "\nsockets " in reply, reply
    reply = talk(sock, b"replace\nnonsense\n")
    assert reply.startswith("replace: pid ") and "\nexit" not in reply, reply
    # a megabyte without a newline
    t0 = time.monotonic()
    reply = talk(sock, b"r" * (1 << 20))
    assert reply == "error: no newline within 256 bytes: a command line is shorter\nexit 2\n", \
        reply
    assert time.monotonic() - t0 < 5 * SLOW

    # too many at once: 8 silent ones hold the slots; more are refused at once
    silent = []
    for _ in range(8):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(15 * SLOW)
        c.connect(sock)
        silent.append(c)
    time.sleep(0.2 * SLOW)
    assert talk(sock, b"status\n") == \
        "error: too many control clients at once; try again\nexit 3\n"
    # the silent ones are closed after 5 s, with a word
    t0 = time.monotonic()
    for c in silent:
        assert read_all(c) == "error: no command line within 5 s\nexit 2\n"
        c.close()
    took = time.monotonic() - t0
    assert took < 5 + 3 * SLOW, f"silent clients held for {took:.1f}s"

    rc, out, err = ctl(sock, "status")
    assert rc == 0 and "last reload: none since start" in out, out
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"] and s.serial() == serial
    m = scrape(port)
    assert m.get("svcmapd_control_refused_total", reason="malformed") == 4
    assert m.get("svcmapd_control_commands_total", command="replace") == 2
    assert m.get("svcmapd_control_refused_total", reason="too_long") == 1
    assert m.get("svcmapd_control_refused_total", reason="clients") == 1
    assert m.get("svcmapd_control_refused_total", reason="timeout") == 8
    assert m.get("svcmapd_control_commands_total", command="status") == 1
    assert m.get("svcmapd_control_commands_total", command="reload") == 0
    assert m.get("svcmapd_reloads_total", result="ok") == 0
    assert m.get("svcmapd_accept_errors_total", listener="control") == 0

    # connects and leaves at once, many times (past the cap, some are refused: they left)
    for _ in range(50):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(sock)
        c.close()
    assert ctl(sock, "status")[0] == 0
    log = s.log()
    assert "reload:" not in log and "stopping" not in log
    assert log.count("replace: the new svcmapd did not take over: serving on") == 2, log
    refused = [l for l in log.splitlines() if "[WARNING] control: pid " in l]
    assert len(refused) == 1 and "byte 1 is 0x16" in refused[0], (
        f"14 refusals within 10 s: one line, naming the first, with the client's pid:\n{log}")
    assert s.proc.poll() is None
