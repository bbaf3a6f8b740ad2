"""conftest.py -- starts svcmapd on loopback and talks DNS to it (system tests).

Everything a test starts binds only to 127.0.0.1 or ::1 on a port checked free for
both UDP and TCP, and is stopped by PID in fixture teardown (SIGTERM, wait,
SIGKILL).  Clients never read /etc/resolv.conf: every query goes to an explicit
loopback address and port.

Helpers here are plain functions so the test modules can `from conftest import`
them; fixtures wrap the processes.
"""

import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"

# Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD/CD).
QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010
FLAG_MASK = QR | AA | TC | RD | RA | Z | AD | CD

START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


def svcmapd_path():
    return Path(os.environ.get("SVCMAPD", REPO / "build" / "svcmapd"))


# --------------------------------------------------------------------------- ports


def free_port(host="127.0.0.1"):
    """A port that is free for both UDP and TCP on host (both bound to check)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        t = socket.socket(family, socket.SOCK_STREAM)
        u = socket.socket(family, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError(f"no port free for UDP and TCP on {host}")


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


class PortBlocker:
    """Holds host:port bound for UDP and listening for TCP (no SO_REUSEADDR)."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            port = free_port(host)
            t = socket.socket(family, socket.SOCK_STREAM)
            u = socket.socket(family, socket.SOCK_DGRAM)
            try:
                t.bind((host, port))
                t.listen(1)
                u.bind((host, port))
            except OSError:
                t.close()
                u.close()
                continue
            self.port, self.tcp, self.udp = port, t, u
            return
        raise RuntimeError("could not block a port")

    def close(self):
        self.tcp.close()
        self.udp.close()


# --------------------------------------------------------------------------- wire


def make_query(qname, rdtype="A", *, rd=False, edns=None, payload=1232, do=False,
               qclass="IN", qid=None, options=None):
    """A dns.message query.  edns=None: no OPT; edns=0/1: OPT with that version."""
    q = dns.message.make_query(qname, rdtype, qclass)
    q.flags = dns.flags.RD if rd else 0
    if qid is not None:
        q.id = qid
    if edns is not None:
        q.use_edns(edns, dns.flags.DO if do else 0, payload, options=options or [])
    return q


def question_wire(wire):
    """The raw bytes of the first question of a message (name + type + class)."""
    pos = 12
    while True:
        n = wire[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in question")
        pos += 1 + n
    return wire[12:pos + 4]


def udp_exchange(wire, port, host="127.0.0.1", timeout=1.0):
    """Send wire over UDP; return the first reply with the same ID, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    qid = wire[:2]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        s.send(wire)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if len(data) < 2 or data[:2] != qid:
                continue
            return data


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def tcp_read_msg(sock):
    (n,) = struct.unpack("!H", recv_exact(sock, 2))
    return recv_exact(sock, n)


def tcp_connect(port, host="127.0.0.1", timeout=2.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def tcp_exchange(wire, port, host="127.0.0.1", timeout=2.0):
    with tcp_connect(port, host, timeout) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        return tcp_read_msg(s)


def parse(wire, one_rr=False):
    return dns.message.from_wire(wire, one_rr_per_rrset=one_rr)


def ask(port, qname, rdtype="A", *, tcp=False, host="127.0.0.1", timeout=None, one_rr=False,
        **kw):
    """Query svcmapd and return the parsed reply with .query, .query_wire and .wire set.

    Fails the test (not returns None) when no reply arrives over UDP in time.
    """
    q = make_query(qname, rdtype, **kw)
    qw = q.to_wire()
    if tcp:
        w = tcp_exchange(qw, port, host, timeout or 2.0)
    else:
        w = udp_exchange(qw, port, host, timeout or 1.0)
        assert w is not None, f"no UDP reply to {qname} {rdtype} within {timeout or 1.0}s"
    r = parse(w, one_rr)
    r.query, r.query_wire, r.wire = q, qw, w
    return r


# --------------------------------------------------------------------------- checks


def rcode_text(r):
    return dns.rcode.to_text(r.rcode())


def flagbits(msg):
    return int(msg.flags) & FLAG_MASK


def flags_text(bits):
    names = [(QR, "qr"), (AA, "aa"), (TC, "tc"), (RD, "rd"), (RA, "ra"), (Z, "z"), (AD, "ad"),
             (CD, "cd")]
    return " ".join(n for b, n in names if bits & b) or "-"


def check_header(r, rcode, *, aa=True, tc=False):
    """ID, QR, opcode, exact flags (AA as given, RD copied, RA/AD/CD/Z clear), rcode,
    exactly one question echoed byte for byte (so 0x20 case too), OPT iff query had one."""
    q = r.query
    assert r.id == q.id, f"ID: expected {q.id}, got {r.id}"
    assert r.opcode() == dns.opcode.QUERY
    want = QR | (AA if aa else 0) | (TC if tc else 0) | (flagbits(q) & RD)
    assert flagbits(r) == want, (
        f"flags: expected [{flags_text(want)}], got [{flags_text(flagbits(r))}]")
    assert rcode_text(r) == rcode, f"rcode: expected {rcode}, got {rcode_text(r)}"
    qdcount = struct.unpack("!H", r.wire[4:6])[0]
    assert qdcount == 1, f"QDCOUNT: expected 1, got {qdcount}"
    assert question_wire(r.wire) == question_wire(r.query_wire), (
        f"question not echoed exactly: sent {r.query.question[0].to_text()!r}, "
        f"got {r.question[0].to_text()!r}")
    if q.edns >= 0:
        assert r.edns == 0, f"query had OPT, reply has {'no OPT' if r.edns < 0 else 'EDNS %d' % r.edns}"
        assert (r.ednsflags & dns.flags.DO) == (q.ednsflags & dns.flags.DO), "DO bit not copied"
    else:
        assert r.edns == -1, "query had no OPT but the reply has one"


def rrlines(section):
    """Sorted 'owner ttl class type rdata' lines; owners keep their case."""
    out = []
    for rrset in section:
        for rd in rrset:
            out.append(f"{rrset.name.to_text()} {rrset.ttl} "
                       f"{dns.rdataclass.to_text(rrset.rdclass)} "
                       f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}")
    return sorted(out)


def lower_lines(lines):
    return sorted(line.lower() for line in lines)


def soa_parts(rrset):
    assert rrset.rdtype == dns.rdatatype.SOA, f"not an SOA: {rrset.to_text()}"
    assert len(rrset) == 1
    rd = rrset[0]
    return rrset.ttl, rd


def check_soa(rrset, zone, ttl, serial=None):
    """Exact SOA shape of SPEC 2.2 (owner/mname/rname compared case-insensitively)."""
    zone = dns.name.from_text(zone)
    ttl_rr, rd = soa_parts(rrset)
    assert rrset.name == zone, f"SOA owner {rrset.name} != {zone}"
    assert rrset.rdclass == dns.rdataclass.IN
    assert ttl_rr == min(ttl, 300), f"SOA TTL: expected {min(ttl, 300)}, got {ttl_rr}"
    assert rd.mname == dns.name.from_text("ns.dns", zone), f"SOA mname {rd.mname}"
    assert rd.rname == dns.name.from_text("hostmaster", zone), f"SOA rname {rd.rname}"
    assert (rd.refresh, rd.retry, rd.expire, rd.minimum) == (7200, 1800, 86400, ttl), (
        f"SOA timers: expected 7200 1800 86400 {ttl}, got "
        f"{rd.refresh} {rd.retry} {rd.expire} {rd.minimum}")
    if serial is not None:
        assert rd.serial == serial, f"SOA serial: expected {serial}, got {rd.serial}"
    return rd.serial


def check_negative(r, rcode, zone="cluster.local", ttl=5, serial=None):
    """NXDOMAIN or NODATA: AA, empty answer, exactly the zone SOA in AUTHORITY."""
    check_header(r, rcode)
    assert r.answer == [], f"{rcode} answer should be empty, got {rrlines(r.answer)}"
    assert len(r.authority) == 1, f"AUTHORITY: expected the zone SOA only, got {rrlines(r.authority)}"
    check_soa(r.authority[0], zone, ttl, serial)
    assert r.additional == [], f"ADDITIONAL should be empty, got {rrlines(r.additional)}"


def check_nodata(r, zone="cluster.local", ttl=5, serial=None):
    check_negative(r, "NOERROR", zone, ttl, serial)


def check_nxdomain(r, zone="cluster.local", ttl=5, serial=None):
    check_negative(r, "NXDOMAIN", zone, ttl, serial)


def check_answer(r, answer, additional=(), *, rcode="NOERROR"):
    """Positive answer: exact ANSWER and ADDITIONAL lines (any order), no AUTHORITY."""
    check_header(r, rcode)
    assert rrlines(r.answer) == sorted(answer), (
        f"ANSWER:\n  expected {sorted(answer)}\n  got      {rrlines(r.answer)}")
    assert r.authority == [], f"AUTHORITY should be empty, got {rrlines(r.authority)}"
    assert rrlines(r.additional) == sorted(additional), (
        f"ADDITIONAL:\n  expected {sorted(additional)}\n  got      {rrlines(r.additional)}")


def check_refused(r):
    """REFUSED: AA=0, no records at all (OPT aside), question echoed."""
    check_header(r, "REFUSED", aa=False)
    assert r.answer == [] and r.authority == [] and r.additional == [], (
        f"REFUSED must carry no records, got {rrlines(r.answer + r.authority + r.additional)}")


# --------------------------------------------------------------------------- processes


def stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Stop one process we started, by its PID: sig, wait, SIGKILL on timeout."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout)


def inject_upstream(config):
    """svcmapd's default upstream is /etc/resolv.conf, which is not on loopback: a test
    config without an [upstream] section gets `servers = none`, so no test can send a
    query anywhere but to its own loopback servers."""
    if re.search(r"^\s*\[upstream\]", config, re.M):
        return config
    return config.rstrip("\n") + "\n\n[upstream]\nservers = none\n"


def inject_workers(config):

    """With SVCMAPD_TEST_WORKERS=N, every server runs N workers: `workers = N` goes on
    the line after `[server]` (tests that check line numbers of later lines use
    line_of() instead of constants)."""
    n = os.environ.get("SVCMAPD_TEST_WORKERS")
    if not n or "[server]" not in config or re.search(r"^\s*workers\s*=", config, re.M):
        return config
    return config.replace("[server]", f"[server]\nworkers = {n}", 1)


class Server:
    """One running svcmapd: .port (127.0.0.1), .port6 (::1, if used), .config_path,
    .proc, .log() (stderr so far)."""

    def __init__(self, binary, workdir, config, *, name="svcmapd.ini", zone="cluster.local",
                 ipv6=False, ipv4=True, args=()):
        self.workdir = Path(workdir)
        self.zone = zone
        self.port = free_port("127.0.0.1") if ipv4 else None
        self.port6 = free_port("::1") if ipv6 else None
        self.config_path = self.workdir / name
        self.write_config(config)
        self.log_path = self.workdir / (name + ".stderr")
        self.out_path = self.workdir / (name + ".stdout")
        self._err = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), *args, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, cwd=self.workdir)
        self.exit_status = None

    def render(self, config):
        text = inject_upstream(inject_workers(config))
        if self.port is not None:
            text = text.replace("@PORT@", str(self.port))
        if self.port6 is not None:
            text = text.replace("@PORT6@", str(self.port6))
        return text

    def write_config(self, config):
        """Write the config atomically (rename), so a reload never sees half a file."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(self.render(config))
        os.replace(tmp, self.config_path)

    def line_of(self, text):
        """The line number of the first line of the written config that contains text."""
        for i, line in enumerate(self.config_path.read_text().splitlines(), 1):
            if text in line:
                return i
        raise AssertionError(f"{text!r} not in {self.config_path}")

    @property
    def host(self):
        return "127.0.0.1" if self.port is not None else "::1"

    @property
    def any_port(self):
        return self.port if self.port is not None else self.port6

    def log(self):
        self._err.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=START_TIMEOUT, bind_race_ok=False):
        """Poll with short UDP queries until svcmapd answers.  With bind_race_ok, an
        exit with status 3 (cannot bind: another process took the port we found free)
        returns False so the caller can retry on a fresh port."""
        q = make_query(self.zone, "SOA").to_wire()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if bind_race_ok and self.proc.returncode == 3:
                    return False
                pytest.fail(f"svcmapd exited with status {self.proc.returncode} during start-up; "
                            f"stderr:\n{self.log()}")
            if udp_exchange(q, self.any_port, self.host, 0.1) is not None:
                return self
            time.sleep(0.02)
        pytest.fail(f"svcmapd did not answer within {timeout}s; stderr:\n{self.log()}")

    def ask(self, qname, rdtype="A", **kw):
        if self.port is None:
            kw.setdefault("host", "::1")
            return ask(self.port6, qname, rdtype, **kw)
        return ask(self.port, qname, rdtype, **kw)

    def serial(self):
        r = self.ask(self.zone, "SOA")
        assert rcode_text(r) == "NOERROR" and len(r.answer) == 1, r.to_text()
        return r.answer[0][0].serial

    def count(self, needle):
        return self.log().count(needle)

    def wait_log(self, needle, count=1, timeout=5.0):
        """Wait until stderr holds needle at least count times; return the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count(needle) >= count:
                return text
            if self.proc.poll() is not None:
                pytest.fail(f"svcmapd exited ({self.proc.returncode}) while waiting for "
                            f"{needle!r}; stderr:\n{text}")
            if time.monotonic() > deadline:
                pytest.fail(f"{needle!r} x{count} not logged within {timeout}s; stderr:\n{text}")
            time.sleep(0.005)

    def reload(self, config=None, timeout=5.0):
        """Optionally rewrite the config, send SIGHUP, wait for its `reload:` line.

        Returns (outcome, new_log_text) where outcome is 'ok' or 'failed'."""
        if config is not None:
            self.write_config(config)
        before = self.log()
        n = before.count("reload:")
        os.kill(self.proc.pid, signal.SIGHUP)
        text = self.wait_log("reload:", n + 1, timeout)
        new = text[len(before):]
        ok, failed = new.count("reload: ok"), new.count("reload: failed")
        assert ok + failed == 1, f"expected one reload outcome line, got:\n{new}"
        return ("ok" if ok else "failed"), new

    def stop(self, sig=signal.SIGTERM):
        if self.exit_status is None:
            self.exit_status = stop_process(self.proc, sig)
            self._err.close()
            self._out.close()
        return self.exit_status


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def sanitizer_report(text):
    """The first sanitizer report in a stderr text, or None (for ASan/UBSan builds)."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            return text[max(0, i - 200):i + 2000]
    return None


def run_cli(args, cwd=None, timeout=10):
    """Run svcmapd with args to completion (never longer than timeout)."""
    proc = subprocess.Popen([str(svcmapd_path()), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, err = proc.communicate()
        pytest.fail(f"svcmapd {' '.join(args)} did not exit within {timeout}s; stderr:\n{err}")
    report = sanitizer_report(err)
    if report:
        pytest.fail(f"sanitizer report from svcmapd {' '.join(args)}:\n{report}")
    return proc.returncode, out, err


def run_tool(argv, timeout=10):
    """Run dig/kdig (bounded) and return (status, stdout)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, _ = proc.communicate()
        pytest.fail(f"{argv[0]} did not finish within {timeout}s:\n{out}")
    return proc.returncode, out


def error_lines(stderr, filename):
    """Line numbers of `FILE:LINE: error:` diagnostics for filename (as given)."""
    pat = re.compile(r"(?:^|\s)" + re.escape(str(filename)) + r":(\d+): error: \S")
    found = []
    for line in stderr.splitlines():
        m = pat.search(line)
        if m:
            found.append(int(m.group(1)))
    return found


class TcpProxy:
    """A loopback TCP relay that counts connections (to prove a client reused one)."""

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        self.socks = []
        self.closing = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                u = socket.create_connection(self.target, timeout=2)
            except OSError:
                c.close()
                continue
            self.socks += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 5)
                if not r:
                    return
                for s in r:
                    data = s.recv(65535)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):   # ValueError: select() on a socket closed by close()
            return
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closing = True
        self.lsock.close()
        for s in self.socks:
            s.close()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def svcmapd_bin():
    path = svcmapd_path()
    assert path.is_file() and os.access(path, os.X_OK), (
        f"svcmapd binary not found at {path} (set SVCMAPD or build it first)")
    return path


@pytest.fixture
def svcmapd(svcmapd_bin, tmp_path):
    """Factory: start(config_text, ...) -> ready Server; all are stopped at teardown.

    config_text may use @PORT@ (127.0.0.1) and @PORT6@ (::1) placeholders."""
    servers = []

    def start(config, *, wait=True, **kw):
        for attempt in range(3):
            # A file name per server, so two servers of one test never share config or log.
            name = kw.pop("name", None) or f"svcmapd-{len(servers) + 1}.ini"
            s = Server(svcmapd_bin, tmp_path, config, name=name, **kw)
            servers.append(s)
            if not wait or s.wait_ready(bind_race_ok=attempt < 2) is not False:
                return s
            s.stop()    # lost a race for the port with another process: new port

    yield start
    for s in servers:
        s.stop()
    for s in servers:
        report = sanitizer_report(s.log_path.read_text(errors="replace"))
        if report:
            pytest.fail(f"sanitizer report from svcmapd ({s.config_path.name}):\n{report}")


@pytest.fixture
def blocker():
    """A 127.0.0.1 port held busy for UDP and TCP by the test."""
    b = PortBlocker()
    yield b
    b.close()


@pytest.fixture(scope="session")
def _std_holder(svcmapd_bin, tmp_path_factory):
    holder = {"server": None, "starts": 0}
    yield holder
    s = holder["server"]
    if s is not None:
        s.stop()
        report = sanitizer_report(s.log_path.read_text(errors="replace"))
        if report:
            pytest.fail(f"sanitizer report from the shared svcmapd:\n{report}")


@pytest.fixture
def std(_std_holder, svcmapd_bin, tmp_path_factory):
    """The shared server for read-only query tests, on data/standard.ini.

    Started once per session.  If it dies during a test, that test fails (with the exit
    status and stderr) and the next test gets a fresh server, so one crash does not
    cascade into hundreds of timeouts."""
    s = _std_holder["server"]
    if s is None or s.proc.poll() is not None:
        _std_holder["starts"] += 1
        config = (DATA / "standard.ini").read_text()
        for attempt in range(3):
            s = Server(svcmapd_bin, tmp_path_factory.mktemp("std"), config, name="standard.ini")
            _std_holder["server"] = s
            if s.wait_ready(bind_race_ok=attempt < 2) is not False:
                break
            s.stop()
        s.soa_serial = s.serial()
    yield s
    report = sanitizer_report(s.log())
    if report:
        pytest.fail(f"sanitizer report from the shared svcmapd during this test:\n{report}")
    if s.proc.poll() is not None:
        tail = "\n".join(s.log().splitlines()[-20:])
        pytest.fail(f"the shared svcmapd died during this test (exit status "
                    f"{s.proc.returncode}); stderr tail:\n{tail}")


# Short names used all over the tests.
ZONE = "cluster.local."


def svc(name):
    """'mysql.test-2' -> 'mysql.test-2.svc.cluster.local.'"""
    return f"{name}.svc.{ZONE}"
