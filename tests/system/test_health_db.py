"""test_health_db.py -- the failover recipe end to end: a real database, a real client.

Two PostgreSQL servers (Debian's), a primary on 127.0.0.2:5432 and a standby on
127.0.0.3:5432, in a private network namespace (`unshare -mn`, as root) where svcmapd
serves 127.0.0.1:53 and the namespace's own resolv.conf names it: `psql` and `getent`
resolve `db.prod.svc.cluster.local` through glibc, as an application in a pod would
behind CoreDNS.  With `check=tcp policy=failover`, the name leads to the primary; the
primary stops; the client's next connection after the failover window (fall probes at
interval, plus the 1 s TTL) reaches the standby, and reaches the primary again once
it is back.  Nothing leaves the namespace, which holds only a loopback interface.
"""

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import in_private_netns

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))

# What the script in the namespace runs, pieces first.
SCRIPT = r"""
set -u
PG={pg}
start() {{  # postgres, as its user; $! is its PID (setpriv execs it)
    setpriv --reuid=postgres --regid=postgres --init-groups "$PG/postgres" -D "$1" \
        -c listen_addresses="$2" -p 5432 -c unix_socket_directories= -c fsync=off \
        >>"$1.log" 2>&1 &
}}
addr() {{
    # one connection through glibc's resolver: the address of the server it reached
    psql "host=db.prod.svc.cluster.local port=5432 user=postgres dbname=postgres \
          connect_timeout=2" -Atc "select inet_server_addr()" 2>&1
}}
wait_dns() {{  # until glibc resolves the name to exactly $1
    i=0
    until [ "$(getent ahosts db.prod.svc.cluster.local | awk '{{print $1}}' | sort -u)" = "$1" ]; do
        i=$((i + 1)); [ $i -gt 150 ] && {{ echo "dns never became $1"; return 1; }}
        sleep 0.1
    done
}}
start {primary} 127.0.0.2; P1=$!
start {standby} 127.0.0.3; P2=$!
for h in 127.0.0.2 127.0.0.3; do
    i=0; until "$PG/pg_isready" -q -h $h -p 5432 -U postgres; do
        i=$((i + 1)); [ $i -gt 100 ] && {{ echo "postgres on $h did not start"; kill $P1 $P2; exit 1; }}
        sleep 0.1
    done
done
wait_dns 127.0.0.2 || {{ kill $P1 $P2; exit 1; }}
echo "before: $(addr)"
kill -TERM $P1; wait $P1
echo "just after: $(addr | head -1 | cut -c1-60)"
wait_dns 127.0.0.3 || {{ kill $P2; exit 1; }}
echo "after: $(addr)"
start {primary} 127.0.0.2; P1=$!
wait_dns 127.0.0.2 || {{ kill $P1 $P2; exit 1; }}
echo "back: $(addr)"
kill -TERM $P1 $P2; wait $P1 $P2
"""

CONFIG = """[server]
listen = 127.0.0.1:53
[upstream]
servers = none
[health]
interval = 1s
timeout = 500ms
fall = 2
rise = 2
[namespace prod]
db = 127.0.0.2:5432, 127.0.0.3:5432 check=tcp policy=failover
"""


@pytest.fixture
def pg_clusters():
    """Two fresh PostgreSQL data directories owned by the postgres user, in a
    directory of their own under /tmp (pytest's is root's alone); removed after."""
    if not PG_BIN or os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root, setpriv and Debian's postgresql")
    top = tempfile.mkdtemp(prefix="svcmapd-pg-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        shutil.chown(top, "postgres", "postgres")
        dirs = []
        for name in ("primary", "standby"):
            d = os.path.join(top, name)
            subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                            f"{PG_BIN[-1]}/initdb", "-D", d, "-A", "trust", "-U", "postgres",
                            "--no-sync", "--no-instructions"],
                           check=True, capture_output=True, timeout=60)
            dirs.append(d)
        yield dirs
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_failover_reaches_the_standby(svcmapd_bin, tmp_path, pg_clusters):
    primary, standby = pg_clusters
    script = SCRIPT.format(pg=PG_BIN[-1], primary=primary, standby=standby)
    r = in_private_netns(svcmapd_bin, tmp_path, CONFIG, script, timeout=60)
    log = (tmp_path / "netns.log").read_text()
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 4, f"{r.stdout}\n{r.stderr}\nsvcmapd:\n{log}"
    assert lines[0] == "before: 127.0.0.2", lines
    # DNS still names the primary until the probes say otherwise: the connection fails
    assert lines[1].startswith("just after: psql: error:"), lines
    assert lines[2] == "after: 127.0.0.3", (lines, log)
    assert lines[3] == "back: 127.0.0.2", (lines, log)
    assert "health: db.prod 127.0.0.2:5432 down: 2 failures, last: connection refused" in log
    assert "health: db.prod 127.0.0.2:5432 up: 2 successes" in log
