"""test_socket_activation.py -- SPEC 7: started by systemd with socket activation ($LISTEN_PID,
$LISTEN_FDS, $LISTEN_FDNAMES), svcmapd answers on the sockets it is given instead of binding
its own: UDP and TCP, one socket shared by several workers, the HTTP endpoints and the control
socket too; a listen address without a socket is bound; a socket the file does not listen on
is closed with a warning; variables meant for another process are ignored.

systemd's own systemd-socket-activate (Debian's systemd package) passes the sockets. It makes
sockets of one type per run, so two run one inside the other: the outer one binds the UDP
sockets and, at the first datagram, execs the inner one, which passes them on beside its
stream sockets and execs svcmapd, in the same process."""

import os
import shutil
import tempfile
import time

import pytest

import conftest
from conftest import free_port, held_sockets, run_ctl, stop_process, svc
from test_ops import addresses, http_status

ACTIVATE = shutil.which("systemd-socket-activate")
pytestmark = pytest.mark.skipif(not ACTIVATE, reason="systemd-socket-activate not found "
                                                     "(apt-get install systemd)")
SLOW = getattr(conftest, "SLOW", 1.0)


def activated(svcmapd, config, datagram, stream=(), names=None):
    """A svcmapd started by systemd-socket-activate with UDP sockets on the `datagram`
    addresses (the first one kicks it) and stream sockets on `stream` (host:port, or a unix
    path); ready once it answers on the first datagram address."""
    chain = [ACTIVATE, "-d"]
    for a in datagram:
        chain += ["-l", a]
    if names:
        chain += [f"--fdname={names}"]
    chain += ["--", ACTIVATE]
    for a in stream:
        chain += ["-l", a]
    chain += ["--"]
    s = svcmapd(config, wait=False, prefix=chain)
    s.port = int(datagram[0].rsplit(":", 1)[1])
    return s.wait_ready()


def problems(s):
    """The errors and warnings of a stopped server's log, the one about root aside."""
    return [line for line in s.log_path.read_text().splitlines()
            if ("[ERROR]" in line or "[WARNING]" in line) and "running as root" not in line]


def fd_inode(pid, fd):
    return os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:["):-1]


def test_answers_on_the_passed_sockets(svcmapd):
    """Both transports answer on systemd's sockets, the ones passed as descriptors 3 and 4:
    svcmapd binds none of its own there (it could not: they are bound without
    SO_REUSEPORT, and a second bind of the address would fail, exit 3)."""
    port = free_port()
    s = activated(svcmapd, f"[server]\nlisten = 127.0.0.1:{port}\n[namespace a]\nx = 10.0.0.1\n",
                  [f"127.0.0.1:{port}"], [f"127.0.0.1:{port}"], names="dns")
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"]
    assert addresses(s.ask(svc("x.a"), tcp=True)) == ["10.0.0.1"]
    log = s.log()
    assert "socket activation: systemd passed 2 sockets" in log, log
    udp = held_sockets(s.proc.pid, "udp", port)
    tcp = held_sockets(s.proc.pid, "tcp", port, "0A")
    assert len(udp) == 1 and len(tcp) == 1, (udp, tcp)
    assert udp[0][9] == fd_inode(s.proc.pid, 3) and tcp[0][9] == fd_inode(s.proc.pid, 4)
    assert s.stop() == 0
    assert problems(s) == [], s.log_path.read_text()


def test_workers_share_one_socket(svcmapd):
    """Four workers and one socket per transport: all of them read it, and every query from
    many clients (spread as SO_REUSEPORT would spread them) is answered."""
    port = free_port()
    s = activated(svcmapd,
                  f"[server]\nlisten = 127.0.0.1:{port}\nworkers = 4\n[namespace a]\nx = 10.0.0.1\n",
                  [f"127.0.0.1:{port}"], [f"127.0.0.1:{port}"])
    assert "127.0.0.1:%d (udp): 1 socket given, for 4 workers: the workers share it" % port \
        in s.log(), s.log()
    for i in range(40):
        assert addresses(s.ask(svc("x.a"), tcp=i % 2 == 1)) == ["10.0.0.1"]
    assert len(held_sockets(s.proc.pid, "udp", port)) == 1
    assert len(held_sockets(s.proc.pid, "tcp", port, "0A")) == 1
    assert s.stop() == 0


def test_a_listen_address_without_a_socket_is_bound(svcmapd):
    passed, own = free_port(), free_port()
    s = activated(svcmapd, f"[server]\nlisten = 127.0.0.1:{passed}, 127.0.0.1:{own}\n"
                           "[namespace a]\nx = 10.0.0.1\n",
                  [f"127.0.0.1:{passed}"], [f"127.0.0.1:{passed}"])
    for port in (passed, own):
        for tcp in (False, True):
            r = conftest.ask(port, svc("x.a"), tcp=tcp)
            assert addresses(r) == ["10.0.0.1"], (port, tcp)
    assert s.stop() == 0


def test_a_socket_the_file_does_not_listen_on_is_closed(svcmapd):
    """The unit and the file disagree: the socket is closed with a warning that says so,
    and svcmapd answers where the file says."""
    stray, port = free_port(), free_port()
    cfg = f"[server]\nlisten = 127.0.0.1:{port}\n[namespace a]\nx = 10.0.0.1\n"
    s = svcmapd(cfg, wait=False, prefix=[ACTIVATE, "-d", "-l", f"127.0.0.1:{stray}",
                                         "--fdname=dns", "--"])
    s.port = port
    for _ in range(int(100 * SLOW)):  # a datagram kicks it, once it listens
        conftest.udp_exchange(conftest.make_query(svc("x.a")).to_wire(), stray, timeout=0.05)
        if "socket activation" in s.log():
            break
    s.wait_ready()
    log = s.wait_log("which the mapping file does not listen on: closed")
    assert f"systemd passed udp 127.0.0.1:{stray} (dns), which the mapping file" in log, log
    assert held_sockets(s.proc.pid, "udp", stray) == []
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"]
    assert s.stop() == 0


def test_http_and_control_sockets_passed(svcmapd):
    """[http] and [control] take their passed sockets too; the control socket's file is
    systemd's: it stays when svcmapd stops."""
    d = tempfile.mkdtemp(prefix="svcsa-")
    try:
        sock, port, web = os.path.join(d, "c.sock"), free_port(), free_port()
        cfg = (f"[server]\nlisten = 127.0.0.1:{port}\n[http]\nhealth = 127.0.0.1:{web}\n"
               f"ready = 127.0.0.1:{web}\n[control]\nsocket = {sock}\n"
               "[namespace a]\nx = 10.0.0.1\n")
        s = activated(svcmapd, cfg, [f"127.0.0.1:{port}"],
                      [f"127.0.0.1:{port}", f"127.0.0.1:{web}", sock])
        assert "systemd passed 4 sockets" in s.log(), s.log()
        assert http_status(web, "/ready") == 200
        rc, out, err = run_ctl(["-s", sock, "status"])
        assert rc == 0 and "state: serving" in out, (rc, out, err)
        assert held_sockets(s.proc.pid, "tcp", web, "0A") != []
        assert s.stop() == 0
        assert os.path.exists(sock), "svcmapd removed systemd's socket file"
        assert problems(s) == [], s.log_path.read_text()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_variables_for_another_process_are_ignored(svcmapd):
    """LISTEN_PID names another process (a parent's leftovers): svcmapd binds its own
    sockets, and leaves descriptor 3 alone."""
    s = svcmapd("[server]\nlisten = 127.0.0.1:@PORT@\n[namespace a]\nx = 10.0.0.1\n",
                prefix=["env", "LISTEN_PID=1", "LISTEN_FDS=1"])
    assert "socket activation" not in s.log()
    assert addresses(s.ask(svc("x.a"))) == ["10.0.0.1"]


def test_bad_listen_fds(svcmapd, tmp_path):
    """LISTEN_FDS that is not a count is an error in the log, and svcmapd binds instead."""
    port = free_port()
    cfg = tmp_path / "bad.ini"
    cfg.write_text(conftest.inject_upstream(
        f"[server]\nlisten = 127.0.0.1:{port}\n[namespace a]\nx = 10.0.0.1\n"))
    log = tmp_path / "bad.log"
    with open(log, "wb") as err:
        p = conftest.subprocess.Popen(
            ["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=two exec "$0" -c {cfg}',
             str(conftest.svcmapd_path())], stdin=conftest.subprocess.DEVNULL,
            stdout=conftest.subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + conftest.START_TIMEOUT
            r = None
            while r is None and time.monotonic() < deadline:
                time.sleep(0.02)
                r = conftest.udp_exchange(conftest.make_query(svc("x.a")).to_wire(), port,
                                          timeout=0.1)
            assert r, log.read_text()
        finally:
            status = stop_process(p)
        assert status == 0, log.read_text()
    assert "LISTEN_FDS=two is not a number of sockets" in log.read_text(), log.read_text()
