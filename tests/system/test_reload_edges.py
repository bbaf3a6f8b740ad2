"""test_reload_edges.py -- reloads at the edges (issue 11): SIGHUP storms, what may stand
at the mapping file's path (a FIFO, a device, a huge file, an empty one), files caught
while being written (the removal guard), `reload =` polling a file it cannot read, the
restart warnings, measured against what the process runs.

Each test replays an attack or an operator's mistake on loopback and asserts what a user
needs: /health and DNS answered promptly, exit on SIGTERM within seconds, memory bounded,
and no partial mapping served.  Every process is stopped by PID at teardown."""

import os
import re
import signal
import subprocess
import threading
import time

import dns.rcode
import pytest

import conftest
from conftest import check_answer, free_port, make_query, parse, run_cli, svc, udp_exchange
from test_ops import addresses, hold_answer, http_request, scrape, wait_answer

SLOW = getattr(conftest, "SLOW", 1.0)
X = svc("x.a")


def mapping(services, server="", sections=""):
    """[server] on @PORT@ with extra lines, extra sections, then namespace a."""
    return (f"[server]\nlisten = 127.0.0.1:@PORT@\nttl = 5\n{server}\n{sections}\n"
            f"[upstream]\nservers = none\n\n[namespace a]\n{services}")


def many(n, first=1):
    """n services s<i> = 10.1.x.y, one line each."""
    return "".join(f"s{i} = 10.1.{i // 250}.{i % 250 + 1}\n" for i in range(first, first + n))


def http_section(health=None, metrics=None):
    lines = ["[http]"]
    if health:
        lines.append(f"health = 127.0.0.1:{health}")
    if metrics:
        lines.append(f"metrics = 127.0.0.1:{metrics}")
    return "\n".join(lines) + "\n"


def outcomes(log):
    return re.findall(r"reload: (ok|failed|held)\b", log)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class Prober(threading.Thread):
    """Asks /health (and a DNS name) every 20 ms until stopped, each with a 1 s timeout;
    keeps the slowest answer and the failures."""

    def __init__(self, health_port, dns_port, qname):
        super().__init__(daemon=True)
        self.health_port, self.dns_port, self.qname = health_port, dns_port, qname
        self.stop_flag = threading.Event()
        self.rounds = 0
        self.slowest = 0.0
        self.failures = []

    def run(self):
        q = make_query(self.qname, "A").to_wire()
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status = http_request(self.health_port, "/health", timeout=1.0)[0]
            except OSError as e:
                status = repr(e)
            answered = udp_exchange(q, self.dns_port, timeout=1.0) is not None
            if self.stop_flag.is_set():
                break                   # stopping: the process may be gone
            if status != 200:
                self.failures.append(("health", status))
            if not answered:
                self.failures.append(("dns", "no answer within 1 s"))
            self.slowest = max(self.slowest, time.monotonic() - t0)
            self.rounds += 1
            time.sleep(0.02)

    def finish(self):
        self.stop_flag.set()
        self.join(5)


def sighups(pid, n):
    """n SIGHUPs, a little apart, as a shell loop of `kill -HUP` sends them: each is
    delivered (signals sent faster merge in the kernel before anyone sees them)."""
    for _ in range(n):
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.002)


def exits_within(s, seconds):
    """SIGTERM; the exit status, or a failure if it takes longer than seconds."""
    t0 = time.monotonic()
    os.kill(s.proc.pid, signal.SIGTERM)
    try:
        rc = s.proc.wait(seconds * SLOW)
    except subprocess.TimeoutExpired:
        pytest.fail(f"svcmapd still running {seconds * SLOW:.0f}s after SIGTERM; "
                    f"log tail:\n{s.log()[-2000:]}")
    return rc, time.monotonic() - t0


# =========================================================================== SIGHUP storms


STORM_SERVICES = 50_000


def test_sighup_storm_collapses(svcmapd):
    """200 SIGHUPs on a 50 000-service file: those that arrive while a reload runs
    collapse into one more, so at most two reloads follow the storm; /health and DNS
    answer promptly throughout; the last file written is what is served. Then 200 more
    and SIGTERM right behind them: exit within a few seconds."""
    ph = free_port()
    text = mapping("x = 10.0.0.1\n" + many(STORM_SERVICES), sections=http_section(health=ph))
    s = svcmapd(text)
    prober = Prober(ph, s.port, svc("s7.a"))
    prober.start()
    try:
        s.write_config(text.replace("x = 10.0.0.1", "x = 10.0.0.2"))
        sighups(s.proc.pid, 200)
        during = len(outcomes(s.log()))
        wait_answer(s, X, ["10.0.0.2"], 10)
        time.sleep(1.0)                 # let anything still queued show
        done = outcomes(s.log())
        assert set(done) == {"ok"}, done
        assert len(done) - during <= 2, (
            f"{len(done) - during} reloads ran after the storm ({len(done)} in all for 200 "
            f"SIGHUPs): those sent during a reload must collapse into one more")
        # a second storm, and SIGTERM right behind it
        sighups(s.proc.pid, 200)
        prober.stop_flag.set()
        rc, took = exits_within(s, 3)
    finally:
        prober.finish()
    assert rc == 0, f"exit status {rc}; log tail:\n{s.log()[-2000:]}"
    assert prober.rounds >= 10, f"only {prober.rounds} probes"
    assert not prober.failures, (
        f"{len(prober.failures)} of {prober.rounds} probes failed during the storm: "
        f"{prober.failures[:5]}")
    assert prober.slowest < 0.5 * SLOW, (
        f"a /health + DNS probe took {prober.slowest:.2f}s during the storm")


# =========================================================================== what is at the path


def spawn(path):
    """svcmapd -c path, not waited for."""
    return subprocess.Popen([str(conftest.svcmapd_path()), "-c", str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_fifo_at_start_and_check(tmp_path):
    """A FIFO at the path: `-t` and the start say so and exit 1 at once, instead of
    waiting in open() for a writer that never comes (deaf to SIGTERM meanwhile)."""
    fifo = tmp_path / "fifo.ini"
    os.mkfifo(fifo)
    for args in (["-t", "-c", str(fifo)], ["-c", str(fifo)]):
        rc, _, err = run_cli(args, timeout=5)
        assert rc == 1 and f"{fifo}: error: not a regular file (a FIFO)" in err, (args, rc, err)


def test_fifo_at_reload(svcmapd):
    """SIGHUP with a FIFO at the path: the reload fails at once with the reason, /health
    and DNS keep answering, SIGTERM stops the process."""
    ph = free_port()
    s = svcmapd(mapping("x = 10.0.0.1\n", sections=http_section(health=ph)))
    tmp = s.config_path.with_suffix(".fifo")
    os.mkfifo(tmp)
    os.replace(tmp, s.config_path)
    os.kill(s.proc.pid, signal.SIGHUP)
    log = s.wait_log("reload: failed", timeout=3)
    assert f"{s.config_path}: error: not a regular file (a FIFO)" in log, log
    assert http_request(ph, "/health", timeout=1.0)[0] == 200
    check_answer(s.ask(X, "A", timeout=1.0), [f"{X} 5 IN A 10.0.0.1"])
    rc, _ = exits_within(s, 3)
    assert rc == 0, rc


def test_fifo_under_polling(svcmapd):
    """`reload = 1s` with a FIFO at the path: reported once as unreadable, counted in
    /metrics, /health and DNS answer, SIGTERM stops."""
    ph, pm = free_port(), free_port()
    s = svcmapd(mapping("x = 10.0.0.1\n", server="reload = 1s",
                        sections=http_section(health=ph, metrics=pm)))
    tmp = s.config_path.with_suffix(".fifo")
    os.mkfifo(tmp)
    os.replace(tmp, s.config_path)
    s.wait_log("not a regular file (a FIFO)", timeout=5)
    hold_answer(s, X, ["10.0.0.1"], 3.0)
    assert s.count("not a regular file") == 1, s.log()
    assert http_request(ph, "/health", timeout=1.0)[0] == 200
    m = scrape(pm)
    assert m.get("svcmapd_config_unreadable") == 1
    assert m.get("svcmapd_config_read_failures_total") == 1
    rc, _ = exits_within(s, 3)
    assert rc == 0, rc


def watch_rss(proc, seconds, limit_kib):
    """Until proc exits (or seconds pass): its RSS must stay under limit_kib. Kills it
    and fails when it does not. Returns the exit status (None: still running)."""
    t_end = time.monotonic() + seconds * SLOW
    while time.monotonic() < t_end:
        rss = rss_kib(proc.pid)
        if rss > limit_kib:
            proc.kill()
            proc.wait()
            pytest.fail(f"RSS grew to {rss // 1024} MiB reading the mapping file")
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.005)
    return None


def test_dev_zero_symlink(svcmapd, tmp_path):
    """A symlink to /dev/zero at the path: refused at start and at reload with a clear
    error, never read (memory stays small)."""
    link = tmp_path / "zero.ini"
    os.symlink("/dev/zero", link)
    proc = spawn(link)
    try:
        rc = watch_rss(proc, 5, 200 * 1024)
    finally:
        conftest.stop_process(proc)
    err = proc.stderr.read()
    assert rc == 1 and f"{link}: error: not a regular file (a character device)" in err, (rc, err)
    s = svcmapd(mapping("x = 10.0.0.1\n"))
    os.replace(link, s.config_path)
    os.kill(s.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5 * SLOW
    while "reload: " not in s.log() and time.monotonic() < deadline:
        if rss_kib(s.proc.pid) > 200 * 1024:
            s.proc.kill()
            pytest.fail("RSS grew past 200 MiB reloading /dev/zero")
        time.sleep(0.005)
    log = s.wait_log("reload: failed", timeout=1)
    assert "not a regular file (a character device)" in log, log
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])


def test_too_large_file(svcmapd, tmp_path):
    """A file over 128 MiB (sparse: no disk used) is refused unread, by -t and reload."""
    big = tmp_path / "big.ini"
    with open(big, "wb") as f:
        f.truncate((128 << 20) + 1)
    rc, _, err = run_cli(["-t", "-c", str(big)], timeout=10)
    assert rc == 1 and f"{big}: error: larger than 128 MiB" in err, (rc, err[:500])
    s = svcmapd(mapping("x = 10.0.0.1\n"))
    os.replace(big, s.config_path)
    outcome, new = s.reload()
    assert outcome == "failed" and "larger than 128 MiB" in new, new
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])


# =========================================================================== torn files


TORN_SERVICES = 400


def test_torn_copy_is_held(svcmapd):
    """`cp big.ini m.ini` caught half-way by a SIGHUP: the half file would remove 200 of
    the 400 services and more: held, counted, the old mapping answers; the whole file
    then is applied. An emptied file is rejected."""
    pm = free_port()
    full = mapping("x = 10.0.0.1\n" + many(TORN_SERVICES), sections=http_section(metrics=pm))
    s = svcmapd(full)
    last = svc(f"s{TORN_SERVICES}.a")
    new = s.render(full.replace("x = 10.0.0.1", "x = 10.0.0.2"))
    cut = new.index(f"s{TORN_SERVICES // 3} =")
    with open(s.config_path, "w") as f:         # in place, as cp does
        f.write(new[:cut])
    outcome, log = s.reload()
    assert outcome == "held", log
    m = re.search(r"reload: held: would remove (\d+) of (\d+) services", log)
    assert m and int(m.group(2)) == TORN_SERVICES + 1, log
    assert f"confirm-removal = {m.group(1)}" in log, log
    check_answer(s.ask(last, "A"), [f"{last} 5 IN A 10.1.1.151"])
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.1"])
    assert scrape(pm).get("svcmapd_reloads_total", result="held") == 1
    # the copy completes
    with open(s.config_path, "w") as f:
        f.write(new)
    outcome, log = s.reload()
    assert outcome == "ok", log
    check_answer(s.ask(X, "A"), [f"{X} 5 IN A 10.0.0.2"])
    check_answer(s.ask(last, "A"), [f"{last} 5 IN A 10.1.1.151"])
    # emptied (a shell's `> m.ini`, cp's first moment): rejected, nothing changes
    open(s.config_path, "w").close()
    outcome, log = s.reload()
    assert outcome == "failed" and f"{s.config_path}: error: the file is empty" in log, log
    with open(s.config_path, "w") as f:
        f.write("; only a comment\n\n")
    outcome, log = s.reload()
    assert outcome == "failed" and "the file is empty" in log, log
    check_answer(s.ask(last, "A"), [f"{last} 5 IN A 10.1.1.151"])


def test_mass_removal_confirmed(svcmapd):
    """Removing most services on purpose: held, then applied once the file confirms the
    exact count; a file that removes more than it confirms stays held. max-removal = 100
    turns the guard off."""
    s = svcmapd(mapping("x = 10.0.0.1\n" + many(40)))
    small = mapping("x = 10.0.0.1\ny = 10.0.0.9\n")
    outcome, log = s.reload(small)
    assert outcome == "held" and "would remove 40 of 41 services" in log, log
    # a torn copy of the confirming file removes one more: still held
    outcome, log = s.reload(mapping("y = 10.0.0.9\n", server="confirm-removal = 40"))
    assert outcome == "held" and "would remove 41 of 41" in log, log
    outcome, log = s.reload(mapping("x = 10.0.0.1\ny = 10.0.0.9\n",
                                    server="confirm-removal = 40"))
    assert outcome == "ok" and "40 removed" in log, log
    check_answer(s.ask(svc("y.a"), "A"), [f"{svc('y.a')} 5 IN A 10.0.0.9"])
    # back to 41, then all but one at once with the guard off
    outcome, log = s.reload(mapping("x = 10.0.0.1\n" + many(40)))
    assert outcome == "ok", log
    outcome, log = s.reload(mapping("x = 10.0.0.1\n", server="max-removal = 100"))
    assert outcome == "ok" and "40 removed" in log, log


def test_small_mappings_edit_freely(svcmapd):
    """Below the floor (10 services removed) nothing is held: removing 2 of 3 services,
    or 10 of 12, is an ordinary edit."""
    s = svcmapd(mapping("x = 10.0.0.1\ny = 10.0.0.2\nz = 10.0.0.3\n"))
    outcome, log = s.reload(mapping("x = 10.0.0.1\n"))
    assert outcome == "ok" and "2 removed" in log, log
    outcome, log = s.reload(mapping("x = 10.0.0.1\ny = 10.0.0.2\n" + many(10)))
    assert outcome == "ok", log
    outcome, log = s.reload(mapping("x = 10.0.0.1\ny = 10.0.0.2\n"))
    assert outcome == "ok" and "10 removed" in log, log


def test_paused_writer_under_polling(svcmapd):
    """`reload = 1s`, and a writer rewriting the file in place that pauses 2.5 s twice:
    each prefix holds still long enough to be loaded, but would remove most services:
    held. The service at the end of the file never stops answering; the whole file is
    applied when it is complete."""
    n = 200
    base = mapping("x = 10.0.0.1\n" + many(n), server="reload = 1s")
    s = svcmapd(base)
    last = svc(f"s{n}.a")
    seen = []
    stop = threading.Event()

    def watch():
        q = make_query(last, "A").to_wire()
        while not stop.is_set():
            w = udp_exchange(q, s.port, timeout=1.0)
            if w is not None:
                r = parse(w)
                seen.append((dns.rcode.to_text(r.rcode()), addresses(r)))
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        new = s.render(base.replace("x = 10.0.0.1", "x = 10.0.0.2"))
        # chunks end at line ends, as the writer's did: each prefix is valid
        cuts = [new.index("\n", len(new) * k // 10) + 1 for k in (1, 4)] + [len(new)]
        with open(s.config_path, "w") as f:
            done = 0
            for cut in cuts:
                f.write(new[done:cut])
                f.flush()
                done = cut
                if cut < len(new):
                    time.sleep(2.5)
        wait_answer(s, X, ["10.0.0.2"], 10)
    finally:
        stop.set()
        t.join(5)
    want = ("NOERROR", ["10.1.0.201"])
    bad = [x for x in seen if x != want]
    assert not bad, f"{len(bad)} of {len(seen)} answers were not {want}: {bad[:3]}\n{s.log()}"
    assert len(seen) > 100, len(seen)
    log = s.log()
    assert log.count("reload: held") >= 1, log
    assert re.findall(r"reload: ok, (\d+) services", log) == [str(n + 1)], log


def test_empty_file_at_start(tmp_path):
    """An empty file (or one of blanks and comments) is never a mapping: -t and the start
    refuse it."""
    empty = tmp_path / "empty.ini"
    for text in ("", "\n; nothing yet\n\n"):
        empty.write_text(text)
        for args in (["-t", "-c", str(empty)], ["-c", str(empty)]):
            rc, _, err = run_cli(args, timeout=5)
            assert rc == 1 and f"{empty}: error: the file is empty" in err, (args, rc, err)


# =========================================================================== polling


def test_polling_reports_an_unreadable_file_once(svcmapd):
    """`reload = 1s` while the path is a symlink to nowhere (a ConfigMap's `..data`
    gone), for good: one error line with the reason, counted; one line when it can be
    read again; nothing per look."""
    pm = free_port()
    text = mapping("x = 10.0.0.1\n", server="reload = 1s", sections=http_section(metrics=pm))
    s = svcmapd(text)
    saved = s.config_path.read_text()
    link = s.config_path.with_suffix(".link")
    os.symlink("..data/gone.ini", link)
    os.replace(link, s.config_path)
    s.wait_log("cannot open: No such file or directory", timeout=5)
    hold_answer(s, X, ["10.0.0.1"], 3.5)
    log = s.log()
    lines = [ln for ln in log.splitlines() if "cannot open" in ln]
    assert len(lines) == 1 and "still serving" in lines[0], log
    m = scrape(pm)
    assert m.get("svcmapd_config_unreadable") == 1
    assert m.get("svcmapd_config_read_failures_total") == 1
    os.remove(s.config_path)
    s.config_path.write_text(saved)
    s.wait_log("can be read again", timeout=5)
    m = scrape(pm)
    assert m.get("svcmapd_config_unreadable") == 0
    assert m.get("svcmapd_config_read_failures_total") == 1
    s.write_config(text.replace("10.0.0.1", "10.0.0.3"))
    wait_answer(s, X, ["10.0.0.3"], 10)


# =========================================================================== restart warnings


def test_restart_warnings_follow_what_runs(svcmapd):
    """The needs-a-restart warnings compare with the running process, not the previous
    file: repeated while the file differs, gone (and said so) once it matches again;
    `user` and [http] included."""
    other, ph = free_port(), free_port()
    base = mapping("x = 10.0.0.1\n")
    s = svcmapd(base)
    moved = base.replace("listen = 127.0.0.1:@PORT@", f"listen = 127.0.0.1:{other}")
    for i in range(2):
        outcome, new = s.reload(moved.replace("10.0.0.1", f"10.0.0.{i + 2}"))
        assert outcome == "ok", new
        assert "'listen' changed; it takes effect only after a restart" in new, (i, new)
    outcome, new = s.reload(base)
    assert outcome == "ok" and "changed;" not in new, new
    assert "'listen' matches what is running again" in new, new
    extra = base.replace("ttl = 5", "ttl = 5\nuser = 0").replace(
        "[upstream]", http_section(health=ph) + "[upstream]")
    outcome, new = s.reload(extra)
    assert outcome == "ok", new
    assert "'user' changed" in new and "[http] changed" in new, new
    outcome, new = s.reload(base)
    assert "'user' matches" in new and "[http] matches" in new, new
