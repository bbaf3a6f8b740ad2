#!/usr/bin/python3
"""runtime.py -- what the systemd unit and the Kubernetes manifests rely on,
tried on the real binary with the mapping the image and the ConfigMap ship
(conf/svcmapd-container.ini), its addresses moved to free loopback ports:

- Type=notify: READY=1 once serving; RELOADING=1 with MONOTONIC_USEC, then
  READY=1, on SIGHUP; STOPPING=1 on SIGTERM.
- The probes: /health and /ready 200 while serving; /metrics in the
  Prometheus text format.
- The state-dir and the control socket (moved to a temporary directory): the
  last good copy written, `status` answered over the socket.
- lameduck: after SIGTERM, /ready answers 503 while DNS still answers; then
  a clean exit, status 0, the socket removed.

Usage: runtime.py SVCMAPD CONTAINER_INI
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from tap import Tap

TAP = Tap("runtime.py")
check = TAP.check


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def dns_a(port, name):
    """The A records of `name` from 127.0.0.1:port over UDP, or None."""
    qid = os.getpid() & 0xFFFF
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    rid, flags, qd, an = struct.unpack(">HHHH", r[:8])
    if rid != qid or flags & 0xF:
        return None
    off = 12
    for _ in range(qd):
        while r[off]:
            off += r[off] + 1
        off += 5
    out = []
    for _ in range(an):
        off += 2 if r[off] & 0xC0 == 0xC0 else len(name) + 2
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        if rtype == 1:
            out.append(socket.inet_ntoa(r[off:off + rdlen]))
        off += rdlen
    return out


def control_command(path, command):
    """The reply of svcmapd's control socket to one command, or the error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out.decode()
    except OSError as e:
        return str(e)
    finally:
        s.close()


def wait_file(path, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def main():
    svcmapd, ini = os.path.abspath(sys.argv[1]), sys.argv[2]
    text = open(ini, encoding="utf-8").read()
    dns, health, ready, metrics = free_port(), free_port(), free_port(), free_port()

    def setting(key, value):
        nonlocal text
        text, n = re.subn(rf"^{key}\s*=.*$", f"{key} = {value}", text, flags=re.M)
        check(n == 1, f"the shipped mapping sets {key}")

    setting("listen", f"127.0.0.1:{dns}")
    setting("health", f"127.0.0.1:{health}")
    setting("ready", f"127.0.0.1:{ready}")
    setting("metrics", f"127.0.0.1:{metrics}")
    setting("lameduck", "2")
    setting("servers", "none")  # nothing is looked up upstream here

    with tempfile.TemporaryDirectory() as tmp:
        state, control = os.path.join(tmp, "state"), os.path.join(tmp, "control.sock")
        os.mkdir(state)
        setting("state-dir", state)
        setting("socket", control)
        cfg = os.path.join(tmp, "svcmapd.ini")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(text)
        sock_path = os.path.join(tmp, "notify")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        ns.settimeout(0.2)

        def wait_msg(pattern, timeout):
            deadline = time.monotonic() + timeout
            seen = []
            while time.monotonic() < deadline:
                try:
                    msg = ns.recv(4096).decode()
                except socket.timeout:
                    continue
                seen.append(msg)
                if re.search(pattern, msg):
                    return msg, seen
            return None, seen

        log = open(os.path.join(tmp, "log"), "w+", encoding="utf-8")
        proc = subprocess.Popen([svcmapd, "-c", cfg], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, NOTIFY_SOCKET=sock_path))
        try:
            msg, seen = wait_msg(r"(^|\n)READY=1(\n|$)", 20)
            check(msg is not None, "notify: READY=1 once serving", repr(seen))
            code, body = http_get(health, "/health")
            check(code == 200, "GET /health: 200", f"{code} {body}")
            code, body = http_get(ready, "/ready")
            check(code == 200, "GET /ready: 200 while serving", f"{code} {body}")
            code, body = http_get(metrics, "/metrics")
            check(code == 200 and "coredns_build_info" in body and "svcmapd_reloads_total" in body,
                  "GET /metrics: Prometheus text", f"{code} {body[:200]}")
            check(dns_a(dns, "mysql.test-2.svc.cluster.local") == ["192.168.1.10"],
                  "DNS: mysql.test-2.svc.cluster.local A 192.168.1.10")
            reply = control_command(control, "status")
            check("state: serving\n" in reply and reply.endswith("exit 0\n"),
                  "control socket: status", reply)
            check(wait_file(os.path.join(state, "last-good.ini")),
                  "state-dir: the last good copy is written", repr(os.listdir(state)))

            proc.send_signal(signal.SIGHUP)
            msg, seen = wait_msg(r"(^|\n)RELOADING=1(\n|$)", 10)
            check(msg is not None and re.search(r"(^|\n)MONOTONIC_USEC=\d+(\n|$)", msg),
                  "notify: RELOADING=1 with MONOTONIC_USEC on SIGHUP", repr(seen))
            msg, seen = wait_msg(r"(^|\n)READY=1(\n|$)", 10)
            check(msg is not None, "notify: READY=1 after the reload", repr(seen))

            proc.send_signal(signal.SIGTERM)
            msg, seen = wait_msg(r"(^|\n)STOPPING=1(\n|$)", 5)
            check(msg is not None, "notify: STOPPING=1 on SIGTERM", repr(seen))
            code, body = http_get(ready, "/ready")
            check(code == 503, "lameduck: GET /ready 503", f"{code} {body}")
            code, body = http_get(health, "/health")
            check(code == 200, "lameduck: GET /health still 200", f"{code} {body}")
            check(dns_a(dns, "mysql.test-2.svc.cluster.local") == ["192.168.1.10"],
                  "lameduck: DNS still answers")
            try:
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = None
            check(rc == 0, "exits with status 0 after lameduck", f"{rc}")
            check(not os.path.exists(control), "the control socket is removed at exit")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.seek(0)
            print("# svcmapd's log:")
            for line in log.read().splitlines():
                print(f"#   {line}")
            log.close()
            ns.close()

    return TAP.finish()


if __name__ == "__main__":
    sys.exit(main())
