#!/usr/bin/python3
"""unit.py -- offline checks of the systemd unit meson generated from
conf/svcmapd.service.in and of conf/svcmapd.socket beside it: `systemd-analyze
verify` of both (with ExecStart pointed at the svcmapd just built),
`systemd-analyze security --offline=true` under an exposure threshold, and the
settings svcmapd's behaviour depends on.

Usage: unit.py UNIT SOCKET SVCMAPD
Exits 0 if every check passed, 1 if one failed, 77 (skipped) without
systemd-analyze.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from tap import Tap

# systemd-analyze security scores 0 (locked down) to 10 (wide open); the
# unit scores 1.7 with systemd 252. Fail if hardening is lost.
MAX_EXPOSURE = 2.5


def read_unit(path):
    """(text, {"Section.Key": [values]}) of a unit file."""
    text = open(path, encoding="utf-8").read()
    settings = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
            continue
        k, _, v = line.partition("=")
        settings.setdefault(f"{section}.{k}", []).append(v)
    return text, settings


def check_socket(check, text, settings):
    """svcmapd.socket: UDP and TCP on one address, port 53, for svcmapd.service."""
    udp, tcp = settings.get("Socket.ListenDatagram", []), settings.get("Socket.ListenStream", [])
    check(len(udp) >= 1 and sorted(udp) == sorted(tcp),
          "svcmapd.socket: ListenDatagram= and ListenStream= on the same addresses", f"{udp} {tcp}")
    check(all(a.rsplit(":", 1)[-1] == "53" for a in udp + tcp), "svcmapd.socket: port 53")
    check(settings.get("Socket.Service", ["svcmapd.service"])[-1] == "svcmapd.service"
          and not settings.get("Socket.Accept", []),
          "svcmapd.socket activates svcmapd.service, one process for every socket (no Accept=)")
    check(settings.get("Install.WantedBy", [None])[-1] == "sockets.target",
          "svcmapd.socket: WantedBy=sockets.target")
    check("`listen`" in text, "svcmapd.socket says its addresses must be the `listen` addresses")


def main():
    unit, socket_unit, svcmapd = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    tap = Tap("unit.py")
    check = tap.check

    text, settings = read_unit(unit)
    socket_text, socket_settings = read_unit(socket_unit)
    check_socket(check, socket_text, socket_settings)
    check("svcmapd.socket" in text and "--replace" in text,
          "the unit's comments give the upgrade path (svcmapd.socket), and say why not --replace")

    def one(key):
        v = settings.get(key, [])
        return v[-1] if v else None

    exec_start = one("Service.ExecStart") or ""
    binary = exec_start.split()[0] if exec_start else ""
    config = re.search(r"-c (\S+)", exec_start)
    check(not re.search(r"@[A-Z_]+@", text), "meson substituted every @VAR@")
    check(one("Service.Type") == "notify", "Type=notify (svcmapd sends READY=1 itself)")
    check(not any(" -t" in v for v in settings.get("Service.ExecStartPre", [])),
          "no ExecStartPre -t: a broken file starts on the last good copy")
    state = re.search(r"--state-dir (\S+)", exec_start)
    check(one("Service.StateDirectory") == "svcmapd" and state is not None
          and state.group(1) == "/var/lib/svcmapd",
          "StateDirectory=svcmapd, and ExecStart passes it as --state-dir /var/lib/svcmapd")
    check(one("Service.RuntimeDirectory") == "svcmapd",
          "RuntimeDirectory=svcmapd, for the control socket /run/svcmapd/control.sock")
    check(config is not None and config.group(1).endswith("/svcmapd/svcmapd.ini"),
          "ExecStart reads <sysconfdir>/svcmapd/svcmapd.ini")
    check(one("Service.ExecReload") == "/bin/kill -HUP $MAINPID", "ExecReload sends SIGHUP")
    check(one("Service.Restart") == "on-failure", "Restart=on-failure")
    check(one("Service.DynamicUser") == "yes" or one("Service.User") not in (None, "", "root", "0"),
          "runs as an unprivileged user")
    check(one("Service.AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
          and one("Service.CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE",
          "CAP_NET_BIND_SERVICE only, for port 53")
    families = set((one("Service.RestrictAddressFamilies") or "").split())
    check({"AF_INET", "AF_INET6", "AF_UNIX"} <= families,
          "RestrictAddressFamilies keeps AF_INET, AF_INET6 and AF_UNIX ($NOTIFY_SOCKET)")
    check("AF_NETLINK" in families, "AF_NETLINK kept: getifaddrs(3) for a wildcard listen")
    ro = " ".join(settings.get("Service.ReadOnlyPaths", []))
    check(config is not None and os.path.dirname(config.group(1)) in [p.lstrip("-") for p in ro.split()],
          "ReadOnlyPaths holds the config directory")
    for key, want in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                      ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
                      ("ProtectKernelLogs", "yes"), ("ProtectControlGroups", "yes"),
                      ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
                      ("MemoryDenyWriteExecute", "yes"), ("SystemCallArchitectures", "native")]:
        check(one(f"Service.{key}") == want, f"{key}={want}")
    check("@system-service" in settings.get("Service.SystemCallFilter", []),
          "SystemCallFilter=@system-service")
    nofile = one("Service.LimitNOFILE")
    check(nofile is not None and nofile.isdigit() and int(nofile) >= 2 * 65536,
          "LimitNOFILE well above the largest tcp-max-connections (65535)")

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("# systemd-analyze not found (package systemd): skipping verify and security")
        return tap.finish(skipped=True)

    with tempfile.TemporaryDirectory() as tmp:
        # verify wants the ExecStart binary to exist: use the one just built.
        copy = os.path.join(tmp, "svcmapd.service")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text.replace(binary + " ", svcmapd + " "))
        socket_copy = os.path.join(tmp, "svcmapd.socket")
        with open(socket_copy, "w", encoding="utf-8") as f:
            f.write(socket_text)
        env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
        for what, files in (("svcmapd.service", [copy]),
                            ("svcmapd.socket with svcmapd.service", [socket_copy, copy])):
            r = subprocess.run([analyze, "verify", "--man=no", *files], capture_output=True,
                               text=True, env=env, cwd=tmp)
            noise = [l for l in (r.stdout + r.stderr).splitlines() if "svcmapd" in l]
            check(r.returncode == 0 and not noise,
                  f"systemd-analyze verify {what}: no error or warning",
                  "\n".join(noise) or r.stderr.strip())

        r = subprocess.run([analyze, "security", "--offline=true", "--no-pager", copy],
                           capture_output=True, text=True, env=env, cwd=tmp)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        exposure = float(m.group(1)) if m else None
        check(exposure is not None and exposure <= MAX_EXPOSURE,
              f"systemd-analyze security: exposure at most {MAX_EXPOSURE}",
              f"{exposure}" if exposure is not None else (r.stdout + r.stderr).strip()[-500:])
        if exposure is not None:
            print(f"# exposure {exposure}")

    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
