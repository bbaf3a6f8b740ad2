"""test_state.py -- SPEC 7: the last good mapping in [server] state-dir: written after every
load without an error, served at a start on a broken or unreadable file (loudly: log,
svcmapctl status, metric; /ready stays 200), ended by the next good reload; exit 1 without
a copy; a state-dir that cannot be written; the SOA serial across restarts."""

import os
import re
import shutil
import tempfile
import time

import pytest

import conftest
from conftest import Server, run_cli, run_ctl, svc
from test_ops import addresses, http_status, scrape, started  # noqa: F401 (a fixture)

SLOW = getattr(conftest, "SLOW", 1.0)
HEADER = re.compile(r"^; svcmapd-last-good serial=(\d+) digest=([0-9a-f]{16}) hash=([0-9a-f]{16}): ")


@pytest.fixture
def dirs():
    """(state-dir, socket path): short paths (a unix socket's holds 107 bytes)."""
    d = tempfile.mkdtemp(prefix="svcst-")
    os.mkdir(os.path.join(d, "state"))
    yield os.path.join(d, "state"), os.path.join(d, "c.sock")
    shutil.rmtree(d, ignore_errors=True)


def mapping(state, sock, services="x = 10.0.0.1\n", http=""):
    return (f"[server]\nlisten = 127.0.0.1:@PORT@\nstate-dir = {state}\n"
            f"[control]\nsocket = {sock}\n{http}\n[namespace a]\n{services}")


def copy_path(state):
    return os.path.join(state, "last-good.ini")


def wait_copy(state, serial, timeout=10.0):
    """Waits until the copy says `serial`; returns its text."""
    deadline = time.monotonic() + timeout * SLOW
    text = ""
    while time.monotonic() < deadline:
        try:
            text = open(copy_path(state)).read()
        except FileNotFoundError:
            text = ""
        m = HEADER.match(text)
        if m and int(m.group(1)) == serial:
            return text
        time.sleep(0.02)
    pytest.fail(f"the copy does not say serial {serial}:\n{text[:300]}")


def restart(svcmapd, config, port, **kw):
    """A svcmapd on `port` again: the last good copy it may start on listens there."""
    s = svcmapd(config.replace("@PORT@", str(port)), wait=False, **kw)
    s.port = port
    return s.wait_ready()


def status(sock):
    rc, out, err = run_ctl(["-s", sock, "status"])
    assert rc == 0, (rc, out, err)
    return dict(line.split(": ", 1) for line in out.splitlines())


BROKEN = "x = 10.0.0.400\ny = 10.0.0.1:0\nz = a..b\n"


def test_copy_written_after_every_good_load(svcmapd, dirs):
    state, sock = dirs
    s = svcmapd(mapping(state, sock))
    text = wait_copy(state, s.serial())
    body = text.split("\n", 1)[1]
    assert body == open(s.config_path).read(), "the copy holds the file as it was loaded"
    assert os.stat(copy_path(state)).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(state)) == ["last-good.ini"], "no temporary file stays"
    r = run_cli(["-t", "-c", copy_path(state)])
    assert r[0] == 0, f"the copy is not a valid mapping file itself: {r}"

    s.write_config(mapping(state, sock, services="x = 10.0.0.2\n"))
    assert run_ctl(["-s", sock, "reload"])[0] == 0
    text = wait_copy(state, s.serial())
    assert "x = 10.0.0.2" in text
    s.write_config(mapping(state, sock, services=BROKEN))
    assert run_ctl(["-s", sock, "reload"])[0] == 1
    time.sleep(0.2 * SLOW)
    assert open(copy_path(state)).read() == text, "a rejected file replaced the copy"


def test_start_on_a_broken_file_serves_the_last_good_copy(svcmapd, dirs):
    state, sock = dirs
    port = conftest.free_port()
    http = f"[http]\nready = 127.0.0.1:{port}\nmetrics = 127.0.0.1:{port}\n"
    s = svcmapd(mapping(state, sock, "x = 10.0.0.1\ny = 10.0.0.2\n", http))
    serial = s.serial()
    wait_copy(state, serial)
    assert s.stop() == 0

    # a ConfigMap edit broke the file; the pod restarts
    s2 = restart(svcmapd, mapping(state, sock, BROKEN, http), s.port)
    log = s2.log()
    path = str(s2.config_path)
    assert len(conftest.error_lines(log, path)) == 3, f"every error of the file is logged:\n{log}"
    assert f"3 errors in {path}: starting on the last good copy {copy_path(state)}" in log
    assert f"serving the LAST GOOD COPY {copy_path(state)}, serial {serial}" in log
    assert addresses(s2.ask(svc("y.a"))) == ["10.0.0.2"], "not answered from the copy"
    assert s2.serial() == serial, "the copy serves under the serial it was served under"
    f = status(sock)
    assert f["last good copy"].startswith("IN USE: "), f
    assert copy_path(state) in f["last good copy"]
    assert scrape(port).get("svcmapd_config_last_good_in_use") == 1
    assert http_status(port, "/ready") == 200, "/ready must stay 200: answers are served"

    # the same broken file is not tried again by itself; a good one ends it
    s2.write_config(mapping(state, sock, "x = 10.0.0.1\ny = 10.0.0.3\n", http))
    rc, out, err = run_ctl(["-s", sock, "reload"])
    assert rc == 0, (rc, out, err)
    assert "the last good copy is no longer in use" in s2.log()
    assert status(sock)["last good copy"].startswith("not in use"), status(sock)
    assert scrape(port).get("svcmapd_config_last_good_in_use") == 0
    assert addresses(s2.ask(svc("y.a"))) == ["10.0.0.3"]
    assert s2.serial() > serial
    wait_copy(state, s2.serial())


def test_a_reload_that_fails_keeps_the_copy_in_use(svcmapd, dirs):
    state, sock = dirs
    s = svcmapd(mapping(state, sock))
    wait_copy(state, s.serial())
    s.stop()
    s2 = restart(svcmapd, mapping(state, sock, BROKEN), s.port)
    s2.write_config(mapping(state, sock, "x = 10.0.0.500\n").replace("@PORT@", str(s.port)))
    rc, out, err = run_ctl(["-s", sock, "reload"])
    assert rc == 1 and err.splitlines()[-1].endswith("(the last good copy)"), err
    assert status(sock)["last good copy"].startswith("IN USE"), status(sock)


class Missing(Server):
    """svcmapd started on a mapping file that does not exist (a ConfigMap key gone)."""

    def write_config(self, config):
        pass


def test_reload_interval_does_not_retry_the_broken_file(svcmapd, dirs):
    """Started on the copy because the file is broken, `reload =` does not load that same
    file again (its errors were logged at start), and does load it once it changes."""
    state, sock = dirs

    def watched(services):  # the copy's settings rule while it serves: reload = 1s in both
        return mapping(state, sock, services).replace("[server]\n", "[server]\nreload = 1s\n")

    s = svcmapd(watched("x = 10.0.0.1\n"))
    wait_copy(state, s.serial())
    s.stop()
    s2 = restart(svcmapd, watched(BROKEN), s.port)
    time.sleep(2.5 * SLOW)
    assert "reload: failed" not in s2.log(), s2.log()
    s2.write_config(watched("x = 10.0.0.7\n").replace("@PORT@", str(s.port)))
    s2.wait_log("the last good copy is no longer in use", timeout=10)
    assert addresses(s2.ask(svc("x.a"))) == ["10.0.0.7"]


def test_unreadable_file(svcmapd, started, dirs):
    """A file that cannot be read names no state-dir: --state-dir does, and the copy is
    served; without it, exit 1."""
    state, sock = dirs
    s = svcmapd(mapping(state, sock), args=["--state-dir", state])
    wait_copy(state, s.serial())
    s.stop()
    s2 = started(Missing, "", wait=False, args=["--state-dir", state])
    s2.port = s.port
    s2.wait_ready()
    assert f"{s2.config_path}: error: cannot open: No such file or directory" in s2.log()
    assert "starting on the last good copy" in s2.log()
    assert addresses(s2.ask(svc("x.a"))) == ["10.0.0.1"]
    assert status(sock)["last good copy"].startswith("IN USE"), status(sock)
    s2.stop()
    s3 = started(Missing, "", wait=False)
    assert s3.proc.wait(10 * SLOW) == 1
    assert "cannot start: 1 error in " in s3.log()


def test_no_copy_fails_the_start(svcmapd, dirs):
    state, sock = dirs
    s = svcmapd(mapping(state, sock, BROKEN), wait=False)
    assert s.proc.wait(10 * SLOW) == 1
    log = s.log()
    assert len(conftest.error_lines(log, str(s.config_path))) == 3, log
    assert f"no last good copy to start on in {state}" in log
    assert not os.path.exists(sock)


def test_check_judges_the_file_given(svcmapd, dirs):
    state, sock = dirs
    s = svcmapd(mapping(state, sock))
    wait_copy(state, s.serial())
    s.write_config(mapping(state, sock, BROKEN))
    rc, out, err = run_cli(["-t", "-c", str(s.config_path)])
    assert rc == 1 and "bad IPv4 address" in err, (rc, err)
    rc, out, err = run_cli(["--state-dir", state, "-t", "-c", str(s.config_path)])
    assert rc == 1, "-t judged the copy, not the file given"


def test_state_dir_not_writable(svcmapd, dirs):
    """One warning, serving goes on; each failure counted. (A file where the directory
    should be: root writes into any directory.)"""
    state, sock = dirs
    blocker = os.path.join(state, "file")
    open(blocker, "w").close()
    port = conftest.free_port()
    s = svcmapd(mapping(blocker, sock, http=f"[http]\nmetrics = 127.0.0.1:{port}\n"))
    s.wait_log("state-dir: cannot write the last good copy")
    for i in range(2):
        s.write_config(mapping(blocker, sock, f"x = 10.0.0.{i + 2}\n",
                               http=f"[http]\nmetrics = 127.0.0.1:{port}\n"))
        assert run_ctl(["-s", sock, "reload"])[0] == 0
    deadline = time.monotonic() + 5 * SLOW
    while scrape(port).get("svcmapd_config_last_good_write_failures_total") < 3:
        assert time.monotonic() < deadline, scrape(port).text
        time.sleep(0.05)
    assert s.count("cannot write the last good copy") == 1, s.log()
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.3"]


def read_header(state):
    m = HEADER.match(open(copy_path(state)).read())
    assert m, open(copy_path(state)).read()[:200]
    return int(m.group(1)), m.group(2), m.group(3)


def test_serial_across_restarts(svcmapd, dirs):
    """An unchanged mapping keeps its serial over a restart (secondaries see nothing new);
    a changed one never goes back, even when the saved serial is ahead of the clock."""
    state, sock = dirs
    s = svcmapd(mapping(state, sock))
    serial = s.serial()
    wait_copy(state, serial)
    port = s.port
    s.stop()
    time.sleep(1.1)  # the clock moves on: a new load time
    s = restart(svcmapd, mapping(state, sock).replace("x = 10.0.0.1", "x = 10.0.0.1 ; a comment"),
                port)
    assert s.serial() == serial, "an unchanged mapping got a new serial at restart"
    s.stop()

    # the copy says a serial far ahead (a clock that went back since)
    ahead = int(time.time()) + 100000
    text = open(copy_path(state)).read()
    _, digest, h = read_header(state)
    with open(copy_path(state), "w") as f:
        f.write(HEADER.sub(f"; svcmapd-last-good serial={ahead} digest={digest} hash={h}: ",
                           text, count=1))
    s = restart(svcmapd, mapping(state, sock, "x = 10.0.0.9\n"), port)
    assert s.serial() == ahead + 1, "the serial went back across a restart"
    wait_copy(state, ahead + 1)
