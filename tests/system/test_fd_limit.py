"""test_fd_limit.py -- svcmapd under a low open files limit (issue 11, defect 4).

Each upstream lookup in flight holds a socket, each TCP connection one.  Started under
`prlimit --nofile=N:N`, svcmapd shares its descriptors out (README "Transport": the file
descriptor budget): hundreds of hostname services queried at once, with an upstream that
never answers, must not take the descriptors the TCP listener needs; and when accept()
does run out (more TCP connections than the limit allows), the listener pauses instead
of failing in a loop, logs it a few times, not thousands, and takes connections again
once descriptors are free.  Each test checks what a user needs: an in-zone name answers
promptly over UDP and TCP, svcmapd is quiet (not a core spinning) when nothing happens,
its log stays short, and SIGTERM stops it within seconds.

The upstream is a UDP socket of the test on 127.0.0.1 that reads nothing; every query
goes to loopback.
"""

import http.client
import os
import re
import socket
import time
from pathlib import Path

import dns.rdatatype
import pytest

from conftest import (SLOW, check_answer, free_port, make_query, parse, stops_promptly, svc,
                      svcmapd_path)

GOOD = svc("x.a")
GOOD_ANSWER = [f"{GOOD} 5 IN A 10.0.0.1"]
PROMPT = 1.5 * SLOW
STOP_BOUND = 5.0 * SLOW
QUIET_CPU = 0.3          # of a core, over a quiet second; a spinning loop takes 1.0
LOG_LINES = 40           # a log that says what happened, not each failure
HOSTNAMES = 300
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system time of every thread of pid so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def quiet_cpu(pid, seconds=1.0):
    """The share of a core pid used over `seconds` in which nobody sends it anything."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def answers_promptly(s, what):
    assert s.proc.poll() is None, f"svcmapd died {what}; stderr:\n{s.log()[-3000:]}"
    for tcp in (False, True):
        t0 = time.monotonic()
        try:
            r = s.ask(GOOD, "A", tcp=tcp, timeout=PROMPT)
        except OSError as e:
            pytest.fail(f"{'TCP' if tcp else 'UDP'} query {what}: {e!r} after "
                        f"{time.monotonic() - t0:.2f}s; stderr tail:\n{s.log()[-2000:]}")
        took = time.monotonic() - t0
        check_answer(r, GOOD_ANSWER)
        assert took <= PROMPT, f"the {'TCP' if tcp else 'UDP'} answer {what} took {took:.2f}s"


def short_log(s):
    lines = s.log().splitlines()
    assert len(lines) <= LOG_LINES, (
        f"{len(lines)} log lines; the first 20:\n" + "\n".join(lines[:20]))
    return lines


@pytest.fixture
def silent_upstream():
    """A loopback UDP socket that receives queries and never answers."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{u.getsockname()[1]}"
    u.close()


def test_lookups_within_the_fd_limit(svcmapd, silent_upstream):
    """300 hostname services queried at once under a limit of 256 open files: the
    lookups get what the budget leaves them (said in one warning), the rest answer the
    CNAME alone at once, and TCP keeps working."""
    services = "".join(f"h{i} = h{i}.example.com\n" for i in range(HOSTNAMES))
    s = svcmapd(f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\ntcp-max-connections = 100\n\n"
                f"[upstream]\nservers = {silent_upstream}\ntimeout = 30\n\n"
                f"[namespace a]\nx = 10.0.0.1\n{services}",
                prefix=("prlimit", "--nofile=256:256", "--"))

    # ten clients, so that SO_REUSEPORT spreads them over the workers
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(10)]
    try:
        for c in clients:
            c.connect(("127.0.0.1", s.port))
        for i in range(HOSTNAMES):
            clients[i % 10].send(make_query(svc(f"h{i}.a"), "A", qid=i + 1).to_wire())
        answers_promptly(s, "while the lookups wait")
        alone = 0
        for c in clients:
            c.settimeout(0.2 * SLOW)
            try:
                while True:
                    r = parse(c.recv(65535), True)
                    alone += [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME]
            except socket.timeout:
                pass
        assert alone >= HOSTNAMES // 3, (
            f"only {alone} of {HOSTNAMES} queries over the lookup cap answered at once")
    finally:
        for c in clients:
            c.close()
    answers_promptly(s, "after the burst")
    cpu = quiet_cpu(s.proc.pid)
    assert cpu <= QUIET_CPU, f"svcmapd used {cpu:.2f} of a core while nothing happened"
    short_log(s)
    stops_promptly(s, STOP_BOUND)
    log = s.log_path.read_text()
    warning = [ln for ln in log.splitlines() if "open files limited to 256" in ln]
    assert len(warning) == 1 and "upstream lookups in flight are capped at" in warning[0], log


def test_accept_pauses_out_of_fds(svcmapd):
    """More TCP connections than a limit of 128 open files allows: accept() fails,
    and the listener pauses instead of spinning; once the connections close it takes
    new ones again.  The failures are counted and logged a few times."""
    metrics = free_port()
    s = svcmapd(f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\n\n"
                f"[http]\nmetrics = 127.0.0.1:{metrics}\n\n[namespace a]\nx = 10.0.0.1\n",
                prefix=("prlimit", "--nofile=128:128", "--"))
    held = []
    try:
        for _ in range(150):
            held.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        time.sleep(0.5)
        cpu = quiet_cpu(s.proc.pid)
        assert cpu <= QUIET_CPU, f"svcmapd used {cpu:.2f} of a core out of descriptors"
        lines = short_log(s)
        failed = [ln for ln in lines if "accept: Too many open files" in ln]
        assert 1 <= len(failed) <= 3, "\n".join(lines)
        assert re.search(r"tcp 127\.0\.0\.1:\d+: accept: Too many open files; not accepting "
                         r"for \d+ ms", failed[0]), failed[0]
        t0 = time.monotonic()
        check_answer(s.ask(GOOD, "A", timeout=PROMPT), GOOD_ANSWER)
        assert time.monotonic() - t0 <= PROMPT
    finally:
        for c in held:
            c.close()
    # the listener is back within its longest pause (1 s)
    deadline = time.monotonic() + 5 * SLOW
    while True:
        try:
            check_answer(s.ask(GOOD, "A", tcp=True, timeout=1.0), GOOD_ANSWER)
            break
        except OSError:
            assert time.monotonic() < deadline, f"TCP not served again; stderr:\n{s.log()}"
    answers_promptly(s, "after the connections closed")
    conn = http.client.HTTPConnection("127.0.0.1", metrics, timeout=5)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    m = re.search(r'^svcmapd_accept_errors_total\{listener="dns"\} (\d+)$', body, re.M)
    assert m and int(m.group(1)) >= 1, body[-1500:]
    short_log(s)
    stops_promptly(s, STOP_BOUND)
    log = s.log_path.read_text()
    assert "open files limited to 128, fewer than the" in log, log


def test_no_socket_fails_the_lookup_at_once(svcmapd, silent_upstream):
    """A lookup that can get no socket at all (the nosocket shim: EMFILE in the
    workers) fails at once, logged, and its client gets the CNAME alone then, not
    after the lookup's 30 s timeout: another server would not help."""
    shim = Path(os.environ.get("SVCMAPD_NOSOCKET") or
                svcmapd_path().parent / "tests" / "libnosocket.so")
    assert shim.is_file(), f"the nosocket shim is not built: {shim}"
    env = [f"LD_PRELOAD={shim}",
           "ASAN_OPTIONS=" + ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                    "verify_asan_link_order=0"]))]
    s = svcmapd(f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\n\n"
                f"[upstream]\nservers = {silent_upstream}\ntimeout = 30\n\n"
                f"[namespace a]\nx = 10.0.0.1\nh = h.example.com\n",
                prefix=("env", *env))
    t0 = time.monotonic()
    r = s.ask(svc("h.a"), "A")
    took = time.monotonic() - t0
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME], r
    assert took < PROMPT, f"the client waited {took:.1f}s for a lookup that had no socket"
    log = s.log()
    assert "h.example.com" in log and "Too many open files" in log, log
    answers_promptly(s, "after the failed lookup")
