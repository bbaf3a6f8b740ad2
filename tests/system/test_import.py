"""test_import.py -- SPEC 8, first point: `svcmapd import` from what kubectl prints.

The Services come from a real kubectl's generators (`kubectl create service ...
--dry-run=client -o json`, offline), the Endpoints and EndpointSlices are written
in the API's shape, and all are wrapped in a List as `kubectl get -o json` prints
it. The mapping svcmapd prints is checked line by line, with `svcmapd -t`, and by
serving it and asking it. Bad input: an error, exit 1, nothing on stdout.
"""

import difflib
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import REPO, check_answer, check_nxdomain, rcode_text, run_cli, svc, svcmapd_path

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None,
                                   reason="kubectl not found (tests/run installs kubernetes-client)")


def kubectl_service(kind, name, ns, *args, selector=True):
    """A Service as kubectl's generator makes it, namespaced as `kubectl get -A`
    prints it (Debian's kubectl 1.20 leaves the namespace out of --dry-run)."""
    out = subprocess.run([KUBECTL, "create", "service", kind, name, "-n", ns, *args,
                          "--dry-run=client", "-o", "json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    obj = json.loads(out)
    obj["metadata"]["namespace"] = ns
    if not selector:  # what an operator does for hand-kept endpoints
        del obj["spec"]["selector"]
    return obj


def endpoints(ns, name, ips, ports, not_ready=()):
    subset = {"addresses": [{"ip": ip} for ip in ips], "ports": ports}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns}, "subsets": [subset]}


def endpoint_slice(ns, name, service, family, addrs, ports):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": family,
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, ready in addrs],
            "ports": ports}


def as_list(items):
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def cluster():
    """The objects of a small cluster, as kubectl get services,endpoints,endpointslices
    -A -o json lists them."""
    return [
        kubectl_service("externalname", "mysql", "test-1", "--external-name",
                        "mysql.test-1.example.com"),
        kubectl_service("externalname", "mysql", "test-2", "--external-name", "192.168.1.10"),
        kubectl_service("externalname", "db", "test-2", "--external-name",
                        "mysql.test-2.svc.cluster.local"),
        kubectl_service("clusterip", "pg", "test-2", "--clusterip=None", "--tcp=5432:5432",
                        selector=False),
        endpoints("test-2", "pg", ["192.168.1.30", "192.168.1.31"],
                  [{"name": "5432-5432", "port": 5433, "protocol": "TCP"}],
                  not_ready=["192.168.1.32"]),
        kubectl_service("clusterip", "web", "test-2", "--tcp=80:8080"),
        endpoints("test-2", "web", ["10.244.0.7"], [{"name": "80-8080", "port": 8080}]),
        kubectl_service("clusterip", "ldap", "test-3", "--tcp=389:389,636:636", selector=False),
        endpoint_slice("test-3", "ldap-v4", "ldap", "IPv4", [("10.0.0.5", True), ("10.0.0.6", False)],
                       [{"name": "389-389", "port": 389, "protocol": "TCP"},
                        {"name": "636-636", "port": 636, "protocol": "TCP"}]),
        endpoint_slice("test-3", "ldap-v6", "ldap", "IPv6", [("2001:db8::5", True)],
                       [{"name": "389-389", "port": 389, "protocol": "TCP"}]),
    ]


def run_import(tmp_path, objs, *args, name="cluster.json"):
    path = tmp_path / name
    path.write_text(json.dumps(as_list(objs), indent=4))
    return run_cli(["import", *args, str(path)], timeout=60)


def mapping_lines(text):
    """The lines of a mapping file that are not comments or blank."""
    return [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith(";")]


def run_measured(argv, feed=None, timeout=30):
    """Runs argv to completion, writing the file `feed` into a pipe on its stdin;
    (exit status, stdout, stderr, peak RSS in MiB, seconds). The RSS is an upper
    bound: it counts the test's own memory, which the child had until exec. A
    process still running after timeout is killed, and the test fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                                stdout=out, stderr=err)
        if feed:
            def write():
                try:
                    with open(feed, "rb") as f:
                        shutil.copyfileobj(f, proc.stdin)
                except BrokenPipeError:
                    pass  # it stopped reading, as it should
                finally:
                    try:
                        proc.stdin.close()
                    except BrokenPipeError:
                        pass
            writer = threading.Thread(target=write)
            writer.start()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                proc.wait()
                pytest.fail(f"{argv} did not exit within {timeout}s")
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if feed:
            writer.join()
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read(), err.read(), usage.ru_maxrss // 1024,
                time.monotonic() - start)


def check_file(tmp_path, text, name="check.ini"):
    path = tmp_path / name
    path.write_text(text)
    rc, out, err = run_cli(["-t", "-c", str(path)])
    assert rc == 0 and "error" not in err, f"svcmapd -t refuses the import (exit {rc}):\n{err}\n{text}"
    return out


# ---------------------------------------------------------------- from kubectl


@needs_kubectl
def test_kubectl_objects_become_the_mapping(tmp_path):
    rc, out, err = run_import(tmp_path, cluster())
    assert rc == 0 and err == "", f"exit {rc}, stderr:\n{err}"
    assert mapping_lines(out) == [
        "[server]",
        "zone = cluster.local",
        "[namespace test-1]",
        "mysql = mysql.test-1.example.com",
        "[namespace test-2]",
        "db = mysql.test-2.svc.cluster.local",
        "mysql = 192.168.1.10",
        "pg = 192.168.1.30:5433, 192.168.1.31:5433 srv=_5432-5432._tcp",
        "[namespace test-3]",
        "ldap = 10.0.0.5:389, [2001:db8::5]:389 srv=_389-389._tcp",
    ], out
    # every object left out is named, with why
    assert "; Service test-2/web: ClusterIP with a selector" in out, out
    assert "; Service test-2/pg: 1 address not ready, left out" in out, out
    assert ("; Service test-3/ldap: svcmapd maps one port per service: the first, 389-389; "
            "left out: 636-636") in out, out
    assert "; Service test-3/ldap: 1 address not ready, left out" in out, out
    assert "; 5 of 6 Services mapped" in out, out
    assert check_file(tmp_path, out).startswith(f"{tmp_path}/check.ini: ok, zone cluster.local, 5 services")


@needs_kubectl
def test_readme_shows_this_import(tmp_path):
    """The example of README's "Importing from Kubernetes" is this cluster's import."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Importing from Kubernetes"):]
    shown = section[section.index("```ini\n") + 7:section.index("```\n", section.index("```ini\n") + 7)]
    rc, out, err = run_import(tmp_path, cluster())
    assert rc == 0, err
    assert out == shown, "README shows:\n" + shown + "\nimport prints:\n" + out


@needs_kubectl
def test_imported_mapping_answers(tmp_path, svcmapd):
    """The import, served as it is (with a test listen address): the ExternalName
    holding an IP that CoreDNS answers NXDOMAIN answers A, the hand-kept Endpoints
    answer SRV with the endpoint port."""
    rc, out, err = run_import(tmp_path, cluster())
    assert rc == 0, err
    config = out.replace("zone = cluster.local\n", "zone = cluster.local\nlisten = 127.0.0.1:@PORT@\n")
    s = svcmapd(config)
    check_answer(s.ask(svc("mysql.test-2")), [f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])
    check_answer(s.ask(svc("mysql.test-1"), "CNAME"),
                 [f"{svc('mysql.test-1')} 5 IN CNAME mysql.test-1.example.com."])
    check_answer(s.ask(svc("db.test-2")), [f"{svc('db.test-2')} 5 IN CNAME {svc('mysql.test-2')}",
                                           f"{svc('mysql.test-2')} 5 IN A 192.168.1.10"])
    srv = s.ask(f"_5432-5432._tcp.{svc('pg.test-2')}", "SRV")
    assert rcode_text(srv) == "NOERROR", srv.to_text()
    got = sorted((rr.port, rr.target.to_text()) for rr in srv.answer[0])
    assert got == [(5433, f"192-168-1-30.{svc('pg.test-2')}"), (5433, f"192-168-1-31.{svc('pg.test-2')}")], got
    check_answer(s.ask(svc("ldap.test-3"), "AAAA"), [f"{svc('ldap.test-3')} 5 IN AAAA 2001:db8::5"])
    check_nxdomain(s.ask(svc("web.test-2")))


@needs_kubectl
def test_same_objects_same_text_in_any_order(tmp_path):
    objs = cluster()
    rc, first, err = run_import(tmp_path, objs)
    assert rc == 0, err
    rng = random.Random(8)
    for i in range(3):
        rng.shuffle(objs)
        rc, again, err = run_import(tmp_path, objs, name=f"shuffled-{i}.json")
        assert rc == 0 and again == first, f"order {i} gave another text:\n{again}"


@needs_kubectl
def test_reimport_diff_shows_what_changed(tmp_path):
    """The README's workflow: import again, diff, and see the one address that moved."""
    objs = cluster()
    rc, before, err = run_import(tmp_path, objs)
    assert rc == 0, err
    objs[4]["subsets"][0]["addresses"][1]["ip"] = "192.168.1.41"
    rc, after, err = run_import(tmp_path, objs, name="later.json")
    assert rc == 0, err
    diff = [l for l in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    assert diff == ["-pg = 192.168.1.30:5433, 192.168.1.31:5433 srv=_5432-5432._tcp",
                    "+pg = 192.168.1.30:5433, 192.168.1.41:5433 srv=_5432-5432._tcp"], diff


@needs_kubectl
def test_stdin_and_zone(tmp_path):
    """`import -` reads standard input; --zone puts the mapping in another cluster
    domain, and what is inside it follows."""
    objs = [kubectl_service("externalname", "db", "a", "--external-name", "pg.b.svc.k8s.example"),
            kubectl_service("externalname", "pg", "b", "--external-name", "10.1.2.3"),
            kubectl_service("externalname", "old", "b", "--external-name", "pg.b.svc.cluster.local")]
    proc = subprocess.run([str(svcmapd_path()), "import", "--zone", "K8s.Example.", "-"],
                          input=json.dumps(as_list(objs)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert mapping_lines(proc.stdout) == [
        "[server]", "zone = k8s.example",
        "[namespace a]", "db = pg.b.svc.k8s.example",
        "[namespace b]", "old = pg.b.svc.cluster.local", "pg = 10.1.2.3"], proc.stdout
    check_file(tmp_path, proc.stdout)


# ---------------------------------------------------------------- what svcmapd refuses


def test_what_svcmapd_refuses_becomes_a_comment(tmp_path):
    """Rules only svcmapd's own check knows (1024 targets, an SRV answer over 64 KiB)
    leave a service out with its message, and the CNAMEs to it follow."""
    ns, big = "b" * 63, "a" * 63
    objs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": big, "namespace": ns},
         "spec": {"ports": [{"name": "p", "port": 1}]}},
        endpoints(ns, big, [f"2001:db8::{i:x}" for i in range(1024)], [{"name": "p", "port": 65535}]),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "many", "namespace": ns},
         "spec": {"clusterIP": "None"}},
        endpoints(ns, "many", [f"10.0.{i // 256}.{i % 256}" for i in range(1025)], []),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias", "namespace": ns},
         "spec": {"type": "ExternalName", "externalName": f"{big}.{ns}.svc.cluster.local"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ok", "namespace": ns},
         "spec": {"type": "ExternalName", "externalName": "10.9.9.9"}},
    ]
    rc, out, err = run_import(tmp_path, objs)
    assert rc == 0 and err == "", err
    assert mapping_lines(out)[2:] == [f"[namespace {ns}]", "ok = 10.9.9.9"], out
    # a long reason wraps, at spaces where it can
    text = "".join(out.replace(";", "").split())
    for why in ("its SRV answer is too large for one DNS message",
                "service 'many' has more than 1024 targets",
                f"names {ns}/{big}, which this mapping does not serve"):
        assert "".join(why.split()) in text, out
    assert all(len(l) <= 198 for l in out.splitlines())
    check_file(tmp_path, out)


# ---------------------------------------------------------------- bad input


def test_100_mb_refused_quickly(tmp_path):
    """Over the 64 MiB limit: refused with a clear error, from a file before reading
    it, from a pipe after 64 MiB; memory stays far from the size of the input."""
    path = tmp_path / "big.json"
    with open(path, "w") as f:
        f.write('{"apiVersion": "v1", "kind": "List", "items": [], "padding": "')
        chunk = "x" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write('"}\n')
    for how in ("file", "pipe"):
        rc, out, err, rss, secs = run_measured(
            [str(svcmapd_path()), "import", str(path) if how == "file" else "-"],
            feed=path if how == "pipe" else None)
        assert rc == 1 and out == b"", (how, rc, out[:200])
        assert b"larger than 64 MiB, what svcmapd import reads" in err, err
        assert secs < 10, f"{how}: took {secs:.1f}s"
        assert rss < 250, f"{how}: peak RSS {rss} MiB"


def test_memory_bounded_whatever_the_json(tmp_path):
    """30 MB of `{},` would take some 2 GB in jansson's objects: the parse stops at
    its 1 GiB budget, with a clear error."""
    path = tmp_path / "objects.json"
    path.write_text('{"kind": "List", "items": [' + ",".join(["{}"] * (10 << 20)) + "]}")
    rc, out, err, rss, _ = run_measured([str(svcmapd_path()), "import", str(path)])
    assert rc == 1 and out == b"", err
    assert b"reading this JSON takes more than 1024 MiB of memory" in err, err
    # AddressSanitizer's redzones and quarantine come on top of every allocation
    if b"__asan_init" not in svcmapd_path().read_bytes():
        assert rss < 1400, f"peak RSS {rss} MiB"


@pytest.mark.parametrize("name, text, message", [
    ("not JSON", "apiVersion: v1\nkind: List\n", "not JSON: '[' or '{' expected near 'apiVersion'"),
    ("cut off", '{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Serv',
     "the JSON ends too early (cut off?)"),
    ("not a List", '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}',
     "not a Kubernetes List"),
    ("Pods", json.dumps(as_list([{"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "p", "namespace": "x"}}])),
     "items[0] (Pod x/p): svcmapd import reads Services, Endpoints and EndpointSlices"),
    ("deep", '{"kind": "List", "items": [' + "[" * 100000, "the JSON is nested too deep"),
])
def test_bad_input_exit_1_nothing_on_stdout(tmp_path, name, text, message):
    proc = subprocess.run([str(svcmapd_path()), "import", "-"], input=text.encode(),
                          capture_output=True, timeout=30)
    assert proc.returncode == 1, (name, proc.returncode)
    assert proc.stdout == b"", (name, proc.stdout[:300])
    assert proc.stderr.decode().startswith("stdin:") and message in proc.stderr.decode(), proc.stderr


def test_cannot_write_is_a_runtime_failure(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(as_list([{"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": "a", "namespace": "b"},
                                         "spec": {"type": "ExternalName", "externalName": "10.0.0.1"}}])))
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([str(svcmapd_path()), "import", str(path)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=30)
    assert proc.returncode == 3, proc.returncode
    assert "svcmapd import: cannot write the mapping: No space left on device" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args, rc, message", [
    (["import", "a.json", "b.json"], 2, "svcmapd import: one FILE at most"),
    (["import", "--zone"], 2, "svcmapd import: missing ZONE after '--zone'"),
    (["import", "--nope"], 2, "svcmapd import: unknown option '--nope'"),
    (["import", "--zone", "bad zone", "-"], 2, "--zone: error: zone 'bad zone' is not a domain name"),
    (["import", "--zone", "a..b", "-"], 2, "--zone: error: zone 'a..b' has a label of 0 characters"),
    (["import", "/nonexistent/cluster.json"], 1, "/nonexistent/cluster.json: error: cannot open"),
])
def test_import_usage(args, rc, message):
    got, out, err = run_cli(args)
    assert got == rc and out == "" and message in err, (got, out, err)


def test_help_names_import():
    rc, out, _ = run_cli(["--help"])
    assert rc == 0 and "svcmapd import [--zone ZONE] [FILE|-]" in out, out
