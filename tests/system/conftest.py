"""conftest.py -- starts svcmapd on loopback and talks DNS to it (system tests).

Everything a test starts binds only to 127.0.0.1 or ::1 on a port checked free for
both UDP and TCP, and is stopped by PID in fixture teardown (SIGTERM, wait,
SIGKILL).  Clients never read /etc/resolv.conf: every query goes to an explicit
loopback address and port.

Helpers here are plain functions so the test modules can `from conftest import`
them; fixtures wrap the processes.
"""

import heapq
import os
import random
import re
import select
import shutil
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
import dns.rrset
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"

# Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD/CD).
QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010
FLAG_MASK = QR | AA | TC | RD | RA | Z | AD | CD

# SVCMAPD_VALGRIND=1: every svcmapd the fixtures start runs under valgrind's memcheck
# (see VALGRIND below); it is 20-50x slower, so start-up, stop and query waits stretch
# by SLOW.  Without it SLOW is 1 and nothing changes.
VALGRIND = os.environ.get("SVCMAPD_VALGRIND") == "1"
VALGRIND_ARGV = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                 "--show-leak-kinds=definite,indirect",
                 "--errors-for-leak-kinds=definite,indirect", "--track-fds=no", "-q"]
VALGRIND_EXIT = 99
SLOW = 10.0 if VALGRIND else 1.0

START_TIMEOUT = 5.0 * (12 if VALGRIND else 1)
STOP_TIMEOUT = 5.0 * (6 if VALGRIND else 1)


def svcmapd_path():
    return Path(os.environ.get("SVCMAPD", REPO / "build" / "svcmapd"))


def svcmapctl_path():
    """svcmapctl: $SVCMAPCTL, or the one built beside svcmapd."""
    return Path(os.environ.get("SVCMAPCTL", svcmapd_path().parent / "svcmapctl"))


# --------------------------------------------------------------------------- ports


def port_free(host, port):
    """The port if it is free for both UDP and TCP on host (both bound to
    check; port 0: any), else None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    t = socket.socket(family, socket.SOCK_STREAM)
    u = socket.socket(family, socket.SOCK_DGRAM)
    try:
        t.bind((host, port))
        port = t.getsockname()[1]
        u.bind((host, port))
        return port
    except OSError:
        return None
    finally:
        t.close()
        u.close()


def _socket_inodes(pid):
    """The inodes of process pid's open sockets, as strings."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def socket_rows(pid, proto):
    """The rows of /proc/net/{proto}{,6} (proto: tcp, udp) that are process pid's
    sockets, each split into its fields (1: local address:port in hex, 3: state),
    one row per socket.

    The descriptors are read one by one while sockets come and go, and so is the
    table: a socket is counted only if it is open in a scan before the table is
    read and in one after. Inodes are never reused, so every socket counted was
    open at the moment the first scan ended, all of them at once."""
    before = _socket_inodes(pid)
    tables = []
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            tables.append(Path(table).read_text().splitlines()[1:])
        except OSError:
            continue
    inodes = before & _socket_inodes(pid)
    rows = {}
    for lines in tables:
        for f in (line.split() for line in lines):
            if f[9] in inodes:
                rows[f[9]] = f
    return list(rows.values())


def socket_ports(pid, proto, state=None):
    """The local ports of process pid's sockets (proto: tcp, udp), those in `state`
    only if given (hex, as the table has it: 0A is LISTEN)."""
    return {int(f[1].rsplit(":", 1)[1], 16) for f in socket_rows(pid, proto)
            if state is None or f[3] == state}


def held_sockets(pid, proto, port, state=None):
    """The distinct sockets of process pid (rows of socket_rows()) bound to `port`, those
    in `state` only if given (0A: LISTEN)."""
    return [f for f in socket_rows(pid, proto) if int(f[1].rsplit(":", 1)[1], 16) == port
            and (state is None or f[3] == state)]


_handed_out = set()
_port_rng = random.Random()  # its own: a test that seeds random leaves it be


def free_port(host="127.0.0.1"):
    """A port that is free for both UDP and TCP on host, never one this process
    handed out before.

    Not the kernel's choice for port 0: once the health tests leave thousands of
    connections in TIME_WAIT, the kernel hands out the first free port after that
    block, the same one on every call until someone binds it, so two calls in a row
    gave two servers one port. A random port below the ephemeral range (32768 and
    up, where connect() takes its ports) instead; the pytest processes that run at
    once pick apart."""
    for _ in range(200):
        port = _port_rng.randrange(10000, 32768)
        if port not in _handed_out and port_free(host, port):
            _handed_out.add(port)
            return port
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
    timeout *= SLOW
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
    s.settimeout(timeout * SLOW)
    s.connect((host, port))
    return s


def frame(wire):
    """A DNS message with its TCP length prefix (RFC 1035 4.2.2)."""
    return struct.pack("!H", len(wire)) + wire


def tcp_exchange(wire, port, host="127.0.0.1", timeout=2.0):
    with tcp_connect(port, host, timeout) as s:
        s.sendall(frame(wire))
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
        assert w is not None, (f"no UDP reply to {qname} {rdtype} within "
                               f"{(timeout or 1.0) * SLOW}s")
    r = parse(w, one_rr)
    r.query, r.query_wire, r.wire = q, qw, w
    return r


def addresses(prefix, n, per_line=10):
    """'a.b.c.1, ... a.b.c.n' as continuation lines of 10 (inih reads 198 chars a line)."""
    addrs = [f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(n)]
    lines = [", ".join(addrs[i:i + per_line]) for i in range(0, n, per_line)]
    return ",\n           ".join(lines)


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


def check_soa(rrset, zone, ttl, serial=None, names_zone=None):
    """Exact SOA shape of SPEC 2.2 (owner/mname/rname compared case-insensitively).
    names_zone: where mname and rname are, when not in `zone` (a reverse zone's SOA
    names ns.dns and hostmaster of the zone, SPEC 2.5)."""
    zone = dns.name.from_text(zone)
    names = dns.name.from_text(names_zone) if names_zone else zone
    ttl_rr, rd = soa_parts(rrset)
    assert rrset.name == zone, f"SOA owner {rrset.name} != {zone}"
    assert rrset.rdclass == dns.rdataclass.IN
    assert ttl_rr == min(ttl, 300), f"SOA TTL: expected {min(ttl, 300)}, got {ttl_rr}"
    assert rd.mname == dns.name.from_text("ns.dns", names), f"SOA mname {rd.mname}"
    assert rd.rname == dns.name.from_text("hostmaster", names), f"SOA rname {rd.rname}"
    assert (rd.refresh, rd.retry, rd.expire, rd.minimum) == (7200, 1800, 86400, ttl), (
        f"SOA timers: expected 7200 1800 86400 {ttl}, got "
        f"{rd.refresh} {rd.retry} {rd.expire} {rd.minimum}")
    if serial is not None:
        assert rd.serial == serial, f"SOA serial: expected {serial}, got {rd.serial}"
    return rd.serial


def check_negative(r, rcode, zone="cluster.local", ttl=5, serial=None, names_zone=None):
    """NXDOMAIN or NODATA: AA, empty answer, exactly the zone SOA in AUTHORITY."""
    check_header(r, rcode)
    assert r.answer == [], f"{rcode} answer should be empty, got {rrlines(r.answer)}"
    assert len(r.authority) == 1, f"AUTHORITY: expected the zone SOA only, got {rrlines(r.authority)}"
    check_soa(r.authority[0], zone, ttl, serial, names_zone)
    assert r.additional == [], f"ADDITIONAL should be empty, got {rrlines(r.additional)}"


def check_nodata(r, zone="cluster.local", ttl=5, serial=None, names_zone=None):
    check_negative(r, "NOERROR", zone, ttl, serial, names_zone)


def check_nxdomain(r, zone="cluster.local", ttl=5, serial=None, names_zone=None):
    check_negative(r, "NXDOMAIN", zone, ttl, serial, names_zone)


def check_answer(r, answer, additional=(), *, rcode="NOERROR"):
    """Positive answer: exact ANSWER and ADDITIONAL lines (any order), no AUTHORITY."""
    check_header(r, rcode)
    assert rrlines(r.answer) == sorted(answer), (
        f"ANSWER:\n  expected {sorted(answer)}\n  got      {rrlines(r.answer)}")
    assert r.authority == [], f"AUTHORITY should be empty, got {rrlines(r.authority)}"
    assert rrlines(r.additional) == sorted(additional), (
        f"ADDITIONAL:\n  expected {sorted(additional)}\n  got      {rrlines(r.additional)}")


def check_truncated(r, full):
    """SPEC 3: a UDP reply `r` with TC=1 carries whole records of the answer section of
    `full` (the same query over TCP), fewer than all of them, and nothing in AUTHORITY or
    ADDITIONAL. dnspython reads each record by its RDLENGTH: a cut one would not parse."""
    check_header(r, rcode_text(full), tc=True)
    assert r.authority == [] and r.additional == [], rrlines(r.authority + r.additional)
    part, whole = rrlines(r.answer), rrlines(full.answer)
    for line in part:
        assert line in whole, f"TC reply: {line!r} is not in the full answer {whole}"
        whole.remove(line)
    assert whole or full.authority, "TC reply with the whole answer"


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
    .proc, .log() (stderr so far).  prefix: a command that runs svcmapd (setpriv ...);
    under SVCMAPD_VALGRIND=1 svcmapd runs under valgrind (VALGRIND_ARGV)."""

    def __init__(self, binary, workdir, config, *, name="svcmapd.ini", zone="cluster.local",
                 ipv6=False, ipv4=True, args=(), prefix=()):
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
        argv = [str(binary), *args, "-c", str(self.config_path)]
        if VALGRIND:
            argv = VALGRIND_ARGV + argv
        self.proc = subprocess.Popen(
            [*prefix, *argv],
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
            # The answer must come from this svcmapd: until it has bound the
            # port, another one (a test running in parallel that was given the
            # same free port) may answer there, and this one then exits with 3.
            if (udp_exchange(q, self.any_port, self.host, 0.1) is not None
                    and self.any_port in socket_ports(self.proc.pid, "udp")):
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
        deadline = time.monotonic() + timeout * SLOW
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

        Returns (outcome, new_log_text) where outcome is 'ok', 'failed' or 'held'."""
        if config is not None:
            self.write_config(config)
        before = self.log()
        n = before.count("reload:")
        os.kill(self.proc.pid, signal.SIGHUP)
        text = self.wait_log("reload:", n + 1, timeout)
        # Warnings ("reload: 'listen' changed...") come before the outcome line: wait
        # for the outcome itself (a slow server, under valgrind say, shows the gap).
        deadline = time.monotonic() + timeout * SLOW
        while True:
            new = text[len(before):]
            outcomes = [o for o in ("ok", "failed", "held") for _ in range(new.count(f"reload: {o}"))]
            if outcomes or time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.005)
            text = self.log()
        assert len(outcomes) == 1, f"expected one reload outcome line, got:\n{new}"
        return outcomes[0], new

    def stop(self, sig=signal.SIGTERM):
        if self.exit_status is None:
            self.exit_status = stop_process(self.proc, sig)
            self._err.close()
            self._out.close()
        return self.exit_status


def stops_promptly(s, within=STOP_TIMEOUT):
    """SIGTERM stops Server s, with exit status 0, within `within` seconds."""
    t0 = time.monotonic()
    status = s.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    assert status == 0 and took <= within, (
        f"SIGTERM: exit status {status} after {took:.2f}s; stderr:\n"
        + s.log_path.read_text(errors="replace")[-3000:])


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def sanitizer_report(text):
    """The first sanitizer report in a stderr text, or None (for ASan/UBSan builds);
    under SVCMAPD_VALGRIND=1 also the first valgrind error report."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            return text[max(0, i - 200):i + 2000]
    if VALGRIND:
        return valgrind_report(text)
    return None


# What memcheck prints for an error (with -q it prints nothing else but warnings).
VALGRIND_MARKERS = re.compile(
    r"ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]"
    r"|are definitely lost|are indirectly lost|Invalid read|Invalid write|Invalid free"
    r"|uninitialised|Mismatched free|Syscall param|Source and destination overlap"
    r"|Process terminating with default action")


def valgrind_report(text):
    """The first valgrind error report in a stderr text (with the lines of the same
    ==PID== block after it), or None."""
    m = VALGRIND_MARKERS.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, max(0, m.start() - 1500)) + 1
    return text[start:m.start() + 6000]


def server_report(s):
    """A failure message for a stopped Server: a sanitizer or valgrind report in its
    stderr, or valgrind's error exit status; None if clean."""
    text = s.log_path.read_text(errors="replace")
    report = sanitizer_report(text)
    if report:
        what = "sanitizer or valgrind" if VALGRIND else "sanitizer"
        return f"{what} report from svcmapd ({s.config_path.name}):\n{report}"
    if VALGRIND and s.exit_status == VALGRIND_EXIT:
        return (f"valgrind exit status {VALGRIND_EXIT} from svcmapd ({s.config_path.name}); "
                f"stderr tail:\n" + "\n".join(text.splitlines()[-60:]))
    return None


def stop_and_report(servers):
    """Stops every server, then fails the test if one left a sanitizer or
    valgrind report (all are stopped first, so none outlives the test)."""
    for s in servers:
        s.stop()
    for s in servers:
        report = server_report(s)
        if report:
            pytest.fail(report)


def run_binary(binary, args, cwd=None, timeout=10, env=None):
    """Run binary with args to completion (never longer than timeout), failing the test
    on a sanitizer report: (status, stdout, stderr)."""
    name = Path(binary).name
    proc = subprocess.Popen([str(binary), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True,
                            env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, err = proc.communicate()
        pytest.fail(f"{name} {' '.join(args)} did not exit within {timeout}s; stderr:\n{err}")
    report = sanitizer_report(err)
    if report:
        pytest.fail(f"sanitizer report from {name} {' '.join(args)}:\n{report}")
    return proc.returncode, out, err


def run_cli(args, cwd=None, timeout=10, env=None):
    """Run svcmapd with args to completion (never longer than timeout)."""
    return run_binary(svcmapd_path(), args, cwd, timeout, env)


def run_ctl(args, timeout=None):
    """Run svcmapctl with args to completion (bounded): (status, stdout, stderr)."""
    return run_binary(svcmapctl_path(), args, timeout=(timeout or 90) * SLOW)


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
    stop_and_report(servers)


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
        report = server_report(s)
        if report:
            pytest.fail(f"from the shared svcmapd: {report}")


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


# --------------------------------------------------------------------------- upstream


class UpstreamQuery:
    """One query the fake upstream received."""

    __slots__ = ("t", "name", "rdtype", "transport", "id", "payload", "rd", "src", "answered")

    def __init__(self, t, name, rdtype, transport, qid, payload, rd, src):
        self.t, self.name, self.rdtype, self.transport = t, name, rdtype, transport
        self.id, self.payload, self.rd, self.src = qid, payload, rd, src
        self.answered = None    # time.monotonic() when the reply went out (None: not sent)

    def __repr__(self):
        return (f"<{self.transport} {self.name} {self.rdtype} id={self.id} src={self.src} "
                f"edns={self.payload} t={self.t:.3f} answered={self.answered}>")


class FakeUpstream:
    """A small authoritative DNS server on loopback (UDP and TCP on one free port),
    run by one thread, serving records from a dict the test may change at any time.

    Data: add(name, type, rdata..., ttl=) / replace(...) / remove(name).  A name with a
    CNAME is followed inside the data (as an authoritative server does for its own
    zone); a missing name is NXDOMAIN, a name without the type NODATA, both with the
    SOA of the name's last two labels in AUTHORITY.

    Behaviour per query name (rule(name, ...)): mode = answer | nxdomain | nodata |
    servfail | refused | drop (never answer) | tc (TC=1 over UDP, full answer over
    TCP) | tsig (the answer with two TSIG records added, which we never ask for) |
    tsig-hidden (the same two inside a CNAME's rdata, seen only by libldns) | garbage
    (ANCOUNT 1 and no record: unreadable);
    delay = seconds before the reply (other names are answered meanwhile); extra =
    RR lines appended to the ANSWER section (unrelated records).

    Every query received is logged (.log: UpstreamQuery, with .answered set when the
    reply is sent); queries(), count() and wait_count() read it."""

    SOA_TTL = 60

    def __init__(self, host="127.0.0.1"):
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(20):
            port = free_port(host)
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                self.udp.bind((host, port))
                self.tcp.bind((host, port))
                self.tcp.listen(16)
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise RuntimeError("no free port for the fake upstream")
        self.port = port
        self.lock = threading.Lock()
        self.data = {}      # lower-case name (absolute text) -> list of [rdtype, ttl, rdata text]
        self.rules = {}     # lower-case name -> dict(mode=, delay=, extra=)
        self.log = []
        self._pending = []  # (due, seq, wire, addr, entry): delayed UDP replies
        self._seq = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._conns = []
        self._threads = []
        self.thread = threading.Thread(target=self._run, name=f"upstream:{port}", daemon=True)
        self.thread.start()

    # ---- data

    @property
    def addr(self):
        """The address for `[upstream] servers` (127.0.0.1:P or [::1]:P)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @staticmethod
    def _key(name):
        return dns.name.from_text(name).to_text().lower()

    def add(self, name, rdtype, *rdatas, ttl=300):
        with self.lock:
            rrs = self.data.setdefault(self._key(name), [])
            for rd in rdatas:
                rrs.append([dns.rdatatype.from_text(rdtype), ttl, rd])

    def replace(self, name, rdtype, *rdatas, ttl=300):
        """The records of one type at name become exactly rdatas."""
        t = dns.rdatatype.from_text(rdtype)
        with self.lock:
            rrs = [r for r in self.data.get(self._key(name), []) if r[0] != t]
            rrs += [[t, ttl, rd] for rd in rdatas]
            self.data[self._key(name)] = rrs

    def remove(self, name):
        with self.lock:
            self.data.pop(self._key(name), None)

    def rule(self, name, mode="answer", delay=0.0, extra=()):
        with self.lock:
            self.rules[self._key(name)] = {"mode": mode, "delay": delay, "extra": list(extra)}

    # ---- the log

    def queries(self, name=None, rdtype=None, transport=None):
        key = self._key(name) if name is not None else None
        with self.lock:
            return [q for q in self.log
                    if (key is None or q.name == key) and (rdtype is None or q.rdtype == rdtype)
                    and (transport is None or q.transport == transport)]

    def count(self, name=None, rdtype=None, transport=None):
        return len(self.queries(name, rdtype, transport))

    def wait_count(self, n, name=None, rdtype=None, transport=None, timeout=5.0):
        """Wait until at least n matching queries were received; return them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.queries(name, rdtype, transport)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def clear_log(self):
        with self.lock:
            self.log.clear()

    # ---- answers

    def _soa(self, name):
        labels = dns.name.from_text(name).labels
        zone = dns.name.Name(labels[-3:]) if len(labels) >= 3 else dns.name.root
        rrset = dns.rrset.from_text(zone, self.SOA_TTL, "IN", "SOA",
                                    f"ns.{zone} hostmaster.{zone} 1 7200 1800 86400 "
                                    f"{self.SOA_TTL}")
        return rrset

    def _answer(self, query, transport):
        """(reply wire or None, delay) for one parsed query; logs it."""
        qname = query.question[0].name.to_text().lower()
        qtype = query.question[0].rdtype
        with self.lock:
            rule = dict(self.rules.get(qname, {}))
            data = {k: [list(r) for r in v] for k, v in self.data.items()}
        mode = rule.get("mode", "answer")
        if mode == "drop":
            return None, 0.0
        r = dns.message.make_response(query)
        r.flags |= dns.flags.AA
        if mode in ("servfail", "refused"):
            r.flags &= ~dns.flags.AA
            r.set_rcode(dns.rcode.SERVFAIL if mode == "servfail" else dns.rcode.REFUSED)
            return r.to_wire(), rule.get("delay", 0.0)
        if mode == "tc" and transport == "udp":
            r.flags |= dns.flags.TC
            return r.to_wire(), rule.get("delay", 0.0)
        if mode == "garbage":
            # a header that promises an answer record, and nothing after the question
            w = r.to_wire()
            return w[:6] + b"\x00\x01" + w[8:], rule.get("delay", 0.0)
        name, rcode, negative = qname, dns.rcode.NOERROR, False
        for _ in range(16):
            rrs = data.get(name)
            if mode == "nxdomain" or rrs is None:
                rcode, negative = dns.rcode.NXDOMAIN, True
                break
            if mode == "nodata":
                negative = True
                break
            cname = [rd for t, ttl, rd in rrs if t == dns.rdatatype.CNAME]
            if cname and qtype != dns.rdatatype.CNAME:
                ttl = [ttl for t, ttl, rd in rrs if t == dns.rdatatype.CNAME][0]
                r.answer.append(dns.rrset.from_text(name, ttl, "IN", "CNAME", cname[0]))
                name = dns.name.from_text(cname[0]).to_text().lower()
                mode = "answer"     # rules apply to the question's name only
                continue
            match = [(ttl, rd) for t, ttl, rd in rrs if t == qtype]
            if match:
                r.answer.append(dns.rrset.from_text_list(name, match[0][0], "IN", qtype,
                                                         [rd for _, rd in match]))
            else:
                negative = True
            break
        if negative:
            r.authority.append(self._soa(name))
        r.set_rcode(rcode)
        for line in rule.get("extra", []):
            owner, ttl, rdclass, rdtype, rdata = line.split(None, 4)
            r.answer.append(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata))
        # whatever its size: over UDP too, as a server that ignores the EDNS size would
        # (mode tc answers in full over TCP only)
        wire = r.to_wire(max_size=65535)
        if rule.get("mode") == "tsig":
            wire = self._with_tsigs(wire, 2)
        elif rule.get("mode") == "tsig-hidden":
            wire = self._with_hidden_tsigs(wire)
        return wire, rule.get("delay", 0.0)

    @staticmethod
    def _with_tsigs(wire, n):
        """wire with n TSIG records (key., hmac-sha256, empty MAC) appended to the
        additional section, written by hand: dnspython signs only with a real key."""
        rdata = (b"\x0bhmac-sha256\x00" + struct.pack("!HIHH", 0, 1700000000, 300, 0)
                 + struct.pack("!HHH", struct.unpack("!H", wire[:2])[0], 0, 0))
        rr = b"\x03key\x00" + struct.pack("!HHIH", 250, 255, 0, len(rdata)) + rdata
        return FakeUpstream._with_additional(wire, rr * n, n)

    @staticmethod
    def _with_hidden_tsigs(wire):
        """wire with five records appended to the additional section: a CNAME whose
        rdata is the root name and then two TSIG records, and four A records. Read
        by RDLENGTH it holds no TSIG; libldns reads the CNAME's one-byte target and
        then the rest of its rdata as records of their own, two TSIGs (wire.h)."""
        tsig = b"\x00" + struct.pack("!HHIH", 250, 255, 0, 0)
        cname = (b"\x00" + struct.pack("!HHIH", 5, 1, 0, 1 + 2 * len(tsig)) + b"\x00"
                 + tsig * 2)
        a = b"\x00" + struct.pack("!HHIH", 1, 1, 0, 4) + bytes([192, 0, 2, 1])
        return FakeUpstream._with_additional(wire, cname + a * 4, 5)

    @staticmethod
    def _with_additional(wire, records, n):
        """wire with `records`, n of them in wire form, appended to its additional
        section (the last one), and ARCOUNT raised by n."""
        arcount = struct.unpack("!H", wire[10:12])[0] + n
        return wire[:10] + struct.pack("!H", arcount) + wire[12:] + records

    def _log(self, query, transport, src):
        q = query.question[0]
        entry = UpstreamQuery(time.monotonic(), q.name.to_text().lower(),
                              dns.rdatatype.to_text(q.rdtype), transport, query.id,
                              query.payload if query.edns >= 0 else None,
                              bool(query.flags & dns.flags.RD), src)
        with self.lock:
            self.log.append(entry)
        return entry

    # ---- transport

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            while self._pending and self._pending[0][0] <= now:
                _, _, wire, addr, entry = heapq.heappop(self._pending)
                try:
                    self.udp.sendto(wire, addr)
                    entry.answered = time.monotonic()
                except OSError:
                    pass
            timeout = max(0.0, self._pending[0][0] - now) if self._pending else 1.0
            try:
                ready, _, _ = select.select([self.udp, self.tcp, self._wake_r], [], [], timeout)
            except (OSError, ValueError):
                return
            if self.udp in ready:
                try:
                    wire, addr = self.udp.recvfrom(65535)
                except OSError:
                    wire = None
                if wire:
                    try:
                        query = dns.message.from_wire(wire)
                    except Exception:
                        query = None
                    if query is not None and query.question:
                        entry = self._log(query, "udp", addr)
                        reply, delay = self._answer(query, "udp")
                        if reply is not None:
                            self._seq += 1
                            heapq.heappush(self._pending, (time.monotonic() + delay, self._seq,
                                                           reply, addr, entry))
            if self.tcp in ready:
                try:
                    conn, addr = self.tcp.accept()
                except OSError:
                    continue
                conn.settimeout(10)
                with self.lock:
                    self._conns.append(conn)
                t = threading.Thread(target=self._serve_tcp, args=(conn, addr), daemon=True)
                self._threads.append(t)
                t.start()

    def _serve_tcp(self, conn, addr):
        try:
            while not self._stop.is_set():
                try:
                    wire = tcp_read_msg(conn)
                except (EOFError, OSError):
                    return
                try:
                    query = dns.message.from_wire(wire)
                except Exception:
                    return
                entry = self._log(query, "tcp", addr)
                reply, delay = self._answer(query, "tcp")
                if reply is None:
                    continue
                if delay and self._stop.wait(delay):
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
                entry.answered = time.monotonic()
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self.thread.join(5)
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        for s in (self.udp, self.tcp, self._wake_r, self._wake_w):
            s.close()
        assert not self.thread.is_alive(), "the fake upstream thread did not stop"


@pytest.fixture
def upstream():
    """Factory: upstream(host='127.0.0.1') -> a running FakeUpstream; all are closed
    (sockets closed, threads joined) at teardown."""
    made = []

    def make(host="127.0.0.1"):
        u = FakeUpstream(host)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()


def udp_send(port, qname, rdtype="A", host="127.0.0.1", **kw):
    """Send one UDP query now, answer later with udp_collect(): (socket, query, t0)."""
    q = make_query(qname, rdtype, **kw)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((host, port))
    t0 = time.monotonic()
    s.send(q.to_wire())
    return s, q, t0


def udp_collect(pending, timeout):
    """The reply to a udp_send() query (parsed, with .query/.wire/.elapsed), or None
    if none came within timeout seconds of sending.  Closes the socket."""
    s, q, t0 = pending
    qw = q.to_wire()
    try:
        while True:
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                w = s.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if w[:2] == qw[:2]:
                break
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    r = parse(w, True)
    r.query, r.query_wire, r.wire, r.elapsed = q, qw, w, elapsed
    return r


class Daemon:
    """A helper process (dnsmasq, unbound...) we started; stopped by its PID."""

    def __init__(self, argv, workdir, name):
        self.name = name
        self.log_path = Path(workdir) / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=workdir)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, port, probe, timeout=10.0):
        """Poll with a UDP query (wire) until any reply comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with status {self.proc.returncode}; "
                            f"log:\n{self.log()}")
            if udp_exchange(probe, port, "127.0.0.1", 0.2) is not None:
                return self
            time.sleep(0.05)
        pytest.fail(f"{self.name} did not answer within {timeout}s; log:\n{self.log()}")

    def stop(self):
        stop_process(self.proc)
        self._log.close()


@pytest.fixture
def daemons(tmp_path):
    """Factory: daemons(argv, name) -> a started Daemon; each is stopped by PID at
    teardown (SIGTERM, then SIGKILL)."""
    started = []

    def start(argv, name):
        d = Daemon(argv, tmp_path, name)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


class UdpClient:
    """One UDP socket for a series of queries.  SO_REUSEPORT spreads clients over the
    workers by address and port, so every query from one socket reaches the same
    worker, and with it the same upstream cache.  send() + receive() keep several
    queries in flight on the socket (replies are matched by ID)."""

    def __init__(self, port, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect((host, port))
        self.sport = self.sock.getsockname()[1]
        self.sent = {}      # id -> (query, wire, t0)
        self.inbox = {}     # id -> (reply wire, arrival time)
        self.ids = iter(range(1 + (os.getpid() * 7919) % 50000, 65536))

    def send(self, qname, rdtype="A", **kw):
        """Send a query now; returns its ID for receive()."""
        kw.setdefault("qid", next(self.ids))
        q = make_query(qname, rdtype, **kw)
        qw = q.to_wire()
        self.sent[q.id] = (q, qw, time.monotonic())
        self.sock.send(qw)
        return q.id

    def receive(self, qid, timeout=5.0):
        """The reply to query qid (parsed one RR per rrset, with .query/.query_wire/
        .wire/.elapsed); fails the test if none comes within timeout of sending."""
        q, qw, t0 = self.sent[qid]
        while qid not in self.inbox:
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                pytest.fail(f"no UDP reply to {q.question[0].to_text()} (id {qid}) within "
                            f"{timeout}s")
            self.sock.settimeout(left)
            try:
                w = self.sock.recv(65535)
            except socket.timeout:
                continue
            if len(w) >= 2:
                self.inbox.setdefault(struct.unpack("!H", w[:2])[0], (w, time.monotonic()))
        w, t1 = self.inbox.pop(qid)
        del self.sent[qid]
        r = parse(w, True)
        r.query, r.query_wire, r.wire, r.elapsed = q, qw, w, t1 - t0
        return r

    def ask(self, qname, rdtype="A", timeout=5.0, **kw):
        return self.receive(self.send(qname, rdtype, **kw), timeout)

    def close(self):
        self.sock.close()


@pytest.fixture
def udp_client():
    """Factory: udp_client(port, host='127.0.0.1') -> UdpClient; closed at teardown."""
    made = []

    def make(port, host="127.0.0.1"):
        c = UdpClient(port, host)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# --------------------------------------------------------------------------- stub resolvers


NETNS_WRAPPER = r"""
set -u
ip link set lo up || exit 90
mount --bind "$NETNS_RESOLV" /etc/resolv.conf || exit 91
"$SVCMAPD_BIN" -c "$NETNS_CONFIG" 2>"$NETNS_LOG" &
pid=$!
i=0
# ready once the UDP and TCP sockets of 127.0.0.1:53 are bound (after the compile)
until grep -q " 0100007F:0035 " /proc/net/udp && grep -q " 0100007F:0035 " /proc/net/tcp; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 $pid 2>/dev/null; then kill $pid 2>/dev/null; exit 92; fi
    sleep 0.05
done
sh -c "$NETNS_SCRIPT"
rc=$?
kill $pid
wait $pid
exit $rc
"""


def in_private_netns(svcmapd_bin, tmp_path, config, script, timeout=30):
    """Runs the shell `script` where a real stub resolver (glibc's, musl's) asks svcmapd:
    in private network and mount namespaces (`unshare -mn`, as root) holding only a
    loopback interface, svcmapd serves `config` on 127.0.0.1:53 and /etc/resolv.conf is
    bind-mounted over with one that names 127.0.0.1 alone. Nothing outside the
    namespaces is reachable, and the host's resolv.conf is untouched. svcmapd is stopped
    by its PID when the script ends. Returns the CompletedProcess (stdout, stderr as
    text) of the script; exit statuses 90-92 mean the namespace could not be set up.
    Skips the test unless run as root with unshare."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a private network namespace")
    cfg = tmp_path / "netns.ini"
    cfg.write_text(config)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    env = dict(os.environ, SVCMAPD_BIN=str(svcmapd_bin), NETNS_CONFIG=str(cfg),
               NETNS_RESOLV=str(resolv), NETNS_LOG=str(tmp_path / "netns.log"),
               NETNS_SCRIPT=script)
    proc = subprocess.Popen(["unshare", "-mn", "sh", "-c", NETNS_WRAPPER], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # the session this call started, svcmapd in it
        proc.communicate()
        pytest.fail(f"the script in the private namespace did not end in {timeout}s: {script}")
    log = (tmp_path / "netns.log").read_text() if (tmp_path / "netns.log").exists() else ""
    assert proc.returncode not in (90, 91, 92), (
        f"private namespace not set up (exit {proc.returncode}): {err}\nsvcmapd: {log}")
    assert "ERROR" not in log and sanitizer_report(log) is None, log
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
