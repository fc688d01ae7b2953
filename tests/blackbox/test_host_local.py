"""Black-box: exec the installed `host-local` as a runtime would, for every verb and version, and
feed it bad input (which must yield CNI error JSON and leave the disk untouched)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.schema import result_problems, schema_errors
from shared.version import ALL_VERSIONS
from tests.support.plugin import cni_env, run_plugin

NETNS = "/var/run/netns/pycni-hl-none"  # host-local ignores CNI_NETNS; it only must be non-empty


@pytest.fixture
def host_local(plugin_dir):
    return str(plugin_dir / "host-local")


def conf(data_dir, version="1.1.0", ranges=None, name="net1", **ipam):
    return {"cniVersion": version, "name": name,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": ranges if ranges is not None else [[{"subnet": "10.1.2.0/24"}]], **ipam}}


def call(binary, command, config=None, cid="c1", ifname="eth0", args="", stdin=None, env=None):
    env = env if env is not None else cni_env(command, cid, NETNS, ifname, args, "/nonexistent")
    out = run_plugin(binary, env, config, stdin)
    assert b"Traceback" not in out.stdout
    if out.returncode:
        body = json.loads(out.stdout)
        assert not schema_errors(body, "error"), body
        assert isinstance(body["code"], int) and body["code"] != 999 and body["msg"], body
    return out


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st_ = os.lstat(p)
            out[p] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return out


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_verb_in_every_version(host_local, tmp_path, version):
    c = conf(tmp_path, version, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]],
             routes=[{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}])
    add = call(host_local, "ADD", c)
    assert add.ok, add
    assert not result_problems(add.json, version), result_problems(add.json, version)
    assert add.json["cniVersion"] == version
    text = json.dumps(add.json)
    assert "10.1.2.2/24" in text and "2001:db8::2/64" in text
    if version >= "0.4.0":
        check = call(host_local, "CHECK", {**c, "prevResult": add.json})
        assert check.ok and check.stdout == b"", check
    if version == "1.1.0":
        assert call(host_local, "STATUS", c).ok
        gc = call(host_local, "GC", {**c, "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
        assert gc.ok and gc.stdout == b""
        assert (tmp_path / "net1" / "10.1.2.2").exists()
    else:
        for verb in ("GC", "STATUS"):
            assert call(host_local, verb, c).json["code"] == 1
    delete = call(host_local, "DEL", c)
    assert delete.ok and delete.stdout == b""
    assert sorted(os.listdir(tmp_path / "net1")) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_version_verb(host_local):
    out = run_plugin(host_local, cni_env("VERSION"), stdin=b"")
    assert out.ok and out.json["supportedVersions"] == list(ALL_VERSIONS)


def test_repeated_add_is_idempotent(host_local, tmp_path):
    c = conf(tmp_path)
    first = call(host_local, "ADD", c)
    second = call(host_local, "ADD", c)
    assert first.ok and second.ok and first.json == second.json


def test_reboot_reclaims_backdated_reservations(host_local, tmp_path):
    """A real simulated reboot: the reservation file and the boot marker predate this boot."""
    c = conf(tmp_path, ranges=[[{"subnet": "10.1.2.0/30"}]])
    assert call(host_local, "ADD", c, cid="old").ok
    d = tmp_path / "net1"
    (tmp_path / ".pycni" / "net1" / "boot").write_text("pycni-boot v1\nsome-earlier-boot\n")
    btime = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
    os.utime(d / "10.1.2.2", (btime - 3600, btime - 3600))
    add = call(host_local, "ADD", c, cid="new")
    assert add.ok and add.json["ips"][0]["address"] == "10.1.2.2/30"
    assert (d / "10.1.2.2").read_bytes() == b"new\r\neth0"
    off = conf(tmp_path / "off", ranges=[[{"subnet": "10.1.2.0/30"}]], reclaimAfterReboot=False)
    assert call(host_local, "ADD", off, cid="old").ok
    os.utime(tmp_path / "off" / "net1" / "10.1.2.2", (btime - 3600, btime - 3600))
    assert call(host_local, "ADD", off, cid="new").json["code"] == 100


# -- bad input: right code, message, and not one byte changed on disk ------------------------------------
def assert_untouched(tmp_path, before):
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("stdin,code", [
    (b"", 6), (b"{", 6), (b'{"cniVersion":"1.1.0","name":"net1","ipam":{"ranges":[[{"subnet":"10.1.2.0/2', 6),
    (b"null", 7), (b"[1,2]", 6), (b'"text"', 6), (b"\xff\xfe", 6),
    (b'{"cniVersion":"1.1.0","ipam":{}}', 7),
    (b'{"cniVersion":"0.9.0","name":"net1","ipam":{}}', 1),
    (b'{"cniVersion":1,"name":"net1","ipam":{}}', 6),
    (b'{"cniVersion":"1.1.0","name":"net1"}', 7),
    (b'{"cniVersion":"1.1.0","name":"net1","ipam":{"ranges":"10.1.2.0/24"}}', 7),
    (b'{"cniVersion":"1.1.0","name":"net1","ipam":{"ranges":[[{"subnet":"10.1.2.0/24"}]],"dataDir":["x"]}}', 7),
])
def test_malformed_config(host_local, tmp_path, stdin, code):
    before = snapshot(tmp_path)
    for verb in ("ADD", "DEL", "CHECK"):
        out = call(host_local, verb, stdin=stdin.replace(b'"ranges"', b'"dataDir":"' + str(tmp_path).encode() + b'","ranges"')
                   if b'"dataDir"' not in stdin else stdin)
        assert out.returncode == 1 and out.json["code"] == code, (verb, out)
    assert_untouched(tmp_path, before)


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", ".hidden", "net 1", "net\x00x"])
def test_path_traversal_network_names(host_local, tmp_path, name):
    before = snapshot(tmp_path.parent)
    c = conf(tmp_path / "data", name=name)
    out = call(host_local, "ADD", c)
    assert out.returncode == 1 and out.json["code"] == 7 and "network name" in out.json["msg"]
    assert snapshot(tmp_path.parent) == before


@pytest.mark.parametrize("missing,code", [("CNI_COMMAND", 4), ("CNI_CONTAINERID", 4), ("CNI_IFNAME", 4),
                                          ("CNI_NETNS", 4)])
def test_missing_environment(host_local, tmp_path, missing, code):
    env = cni_env("ADD", "c1", NETNS, "eth0", "", "/x")
    del env[missing]
    out = call(host_local, "ADD", conf(tmp_path), env=env)
    if missing == "CNI_COMMAND":  # no command at all: the reference prints its about text and exits 0
        assert out.ok and out.stdout == b"" and b"host-local" in out.stderr
        assert not (tmp_path / "net1").exists()
        return
    assert out.returncode == 1 and out.json["code"] == code and missing in out.json["msg"]
    assert not (tmp_path / "net1").exists()


@pytest.mark.parametrize("cid,ifname", [("-bad", "eth0"), ("c1", "a/b"), ("c1", "x" * 16), ("c1", ".."),
                                        ("c1;rm", "eth0")])
def test_bad_container_id_or_ifname(host_local, tmp_path, cid, ifname):
    out = call(host_local, "ADD", conf(tmp_path), cid=cid, ifname=ifname)
    assert out.returncode == 1 and out.json["code"] == 4
    assert not (tmp_path / "net1").exists()


def test_bad_cni_args(host_local, tmp_path):
    for args in ("IP=banana", "FOO=1", "IP"):
        out = call(host_local, "ADD", conf(tmp_path), args=args)
        assert out.returncode == 1 and out.json["code"] == 4, out
    assert not (tmp_path / "net1").exists()


def test_data_dir_is_a_file(host_local, tmp_path):
    (tmp_path / "f").write_text("x")
    before = snapshot(tmp_path)
    out = call(host_local, "ADD", conf(tmp_path / "f"))
    assert out.returncode == 1 and out.json["code"] == 5 and str(tmp_path / "f") in out.json["msg"]
    out = call(host_local, "STATUS", conf(tmp_path / "f"))
    assert out.returncode == 1 and out.json["code"] == 50
    assert call(host_local, "DEL", conf(tmp_path / "f")).ok  # nothing there, nothing to release
    assert_untouched(tmp_path, before)


def test_data_dir_is_a_symlink(host_local, tmp_path):
    """A symlinked dataDir is followed, as the reference does (admins move /var/lib that way); a
    dangling one is an I/O error that creates nothing; a symlinked lock file is refused."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert call(host_local, "ADD", conf(tmp_path / "link")).ok
    assert (tmp_path / "real" / "net1" / "10.1.2.2").read_bytes() == b"c1\r\neth0"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = snapshot(tmp_path)
    out = call(host_local, "ADD", conf(tmp_path / "dangling"))
    assert out.returncode == 1 and out.json["code"] == 5
    assert_untouched(tmp_path, before)
    (tmp_path / "evil" / "net1").mkdir(parents=True)
    (tmp_path / "target").write_text("precious")
    (tmp_path / "evil" / "net1" / "lock").symlink_to(tmp_path / "target")
    out = call(host_local, "ADD", conf(tmp_path / "evil"))
    assert out.returncode == 1 and out.json["code"] == 5
    assert (tmp_path / "target").read_text() == "precious"


def test_unwritable_data_dir(host_local, tmp_path):
    """A real read-only dataDir (a read-only bind mount in a private mount namespace): ADD and DEL
    fail with code 5, STATUS says 50, and nothing changes."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private read-only bind mount")
    data = tmp_path / "ro"
    data.mkdir()
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot create a mount namespace: {probe.stderr.decode().strip()}")
    assert call(host_local, "ADD", conf(data), cid="held").ok  # a reservation DEL will fail to release
    before = snapshot(tmp_path)
    for verb, code in (("ADD", 5), ("STATUS", 50), ("DEL", 5)):
        script = (f"mount --make-rprivate / && mount --bind {data} {data} && "
                  f"mount -o remount,bind,ro {data} && exec {host_local}")
        env = cni_env(verb, "held" if verb == "DEL" else "c1", NETNS, "eth0", "", "/x")
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], input=json.dumps(conf(data)).encode(),
                              env=env, capture_output=True, timeout=60)
        body = json.loads(proc.stdout)
        assert proc.returncode == 1 and body["code"] == code, body
        assert "read-only" in (body["msg"] + body.get("details", "")).lower()
    assert_untouched(tmp_path, before)


# -- property: random configs and environments never crash and never touch the disk on error ----------
text = st.one_of(st.sampled_from(["", "x", "10.1.2.0/24", "10.1.2.0/31", "2001:db8::/64", "10.1.2.5", "1.1.0",
                                  "0.3.1", "net1", "../x", "a" * 20]), st.text(max_size=8))
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), text)
value = st.recursive(leaf, lambda i: st.one_of(st.lists(i, max_size=3), st.dictionaries(
    st.sampled_from(["subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "dst", "ips", "cni"]), i, max_size=3)),
    max_leaves=10)
ipam = st.fixed_dictionaries({}, optional={"type": value, "ranges": st.one_of(value, st.just([[{"subnet": "10.9.0.0/30"}]])),
                                           "subnet": value, "routes": value, "resolvConf": value,
                                           "reclaimAfterReboot": value, "rangeStart": value})
config = st.fixed_dictionaries({}, optional={"cniVersion": st.one_of(st.sampled_from(list(ALL_VERSIONS)), value),
                                             "name": st.one_of(st.just("net1"), value), "ipam": st.one_of(ipam, value),
                                             "runtimeConfig": value, "args": value, "prevResult": value})
environment = st.fixed_dictionaries({"CNI_COMMAND": st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION",
                                                                     "", "BOGUS"])},
                                    optional={"CNI_CONTAINERID": text, "CNI_IFNAME": text, "CNI_NETNS": text,
                                              "CNI_ARGS": st.one_of(text, st.just("IP=10.9.0.2"))})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=config, env=environment)
def test_random_input_never_crashes(host_local, tmp_path, cfg, env):
    data = tmp_path / uuid.uuid4().hex
    if isinstance(cfg.get("ipam"), dict):
        cfg["ipam"]["dataDir"] = str(data)
    full_env = cni_env("ADD")
    for k in list(full_env):
        if k.startswith("CNI_"):
            del full_env[k]
    full_env.update({k: v.replace("\x00", "") for k, v in env.items()})
    out = run_plugin(host_local, full_env, stdin=json.dumps(cfg).encode())
    assert b"Traceback" not in out.stdout and b"Traceback" not in out.stderr, out
    if out.stdout.strip():
        body = json.loads(out.stdout)
        if out.returncode:
            assert body["code"] != 999, body
            assert not data.exists(), f"a failed {env['CNI_COMMAND']} changed the disk: {body}"
    else:
        assert out.returncode == 0
        if env["CNI_COMMAND"] != "ADD":
            assert not data.exists(), f"{env['CNI_COMMAND']} created files"


def _populate(host_local, root, reservations):
    """A network holding `reservations` files another implementation wrote, plus "target"'s lease."""
    net = root / "net1"
    net.mkdir(parents=True)
    for i in range(reservations):
        (net / f"10.{i // 65536 + 100}.{i // 256 % 256}.{i % 256}").write_bytes(f"other{i}\r\neth0".encode())
    c = conf(root, ranges=[[{"subnet": "10.0.0.0/16"}]])
    assert call(host_local, "ADD", c, cid="target").ok
    return net, c


def _strace(host_local, root, c, env):
    """Syscall counts of one exec'd call, by strace -c."""
    report = root / "strace.txt"
    proc = subprocess.run(["strace", "-f", "-c", "-o", str(report), host_local], input=json.dumps(c).encode(),
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc
    counts = {}
    for line in report.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in ("openat", "getdents64", "read", "total"):
            counts[parts[-1]] = int(parts[3])
    return counts


def _del_syscalls(host_local, root, reservations):
    """Syscalls of one exec'd DEL on a network holding `reservations` other files."""
    net, c = _populate(host_local, root, reservations)
    counts = _strace(host_local, root, c, cni_env("DEL", "target", NETNS, "eth0", "", "/nonexistent"))
    assert not [n for n in os.listdir(net) if n.startswith("10.0.")]
    return counts


def _add_check_syscalls(host_local, root, reservations, reference_adds=0):
    """Syscalls of one exec'd ADD (a new container) and one CHECK (of an existing one), after
    `reference_adds` more files appeared that pycni has not seen yet."""
    net, c = _populate(host_local, root, reservations)
    for i in range(reference_adds):
        (net / f"10.99.0.{i + 1}").write_bytes(f"ref{i}\r\neth0".encode())
    add = _strace(host_local, root, c, cni_env("ADD", "fresh", NETNS, "eth0", "", "/nonexistent"))
    assert (net / "10.0.0.3").read_bytes() == b"fresh\r\neth0"
    check = _strace(host_local, root, c, cni_env("CHECK", "target", NETNS, "eth0", "", "/nonexistent"))
    return add, check


def test_del_cost_does_not_grow_with_reservations(host_local, tmp_path):
    """DEL at 10,000 reservations does the same work as at 10 (the reference reads every file)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    small = _del_syscalls(host_local, tmp_path / "small", 10)
    large = _del_syscalls(host_local, tmp_path / "large", 10_000)
    assert large["openat"] == small["openat"] and large.get("getdents64") == small.get("getdents64"), (small, large)
    assert large["total"] <= small["total"] * 1.2, (small, large)


def test_add_and_check_cost_does_not_grow_with_reservations(host_local, tmp_path):
    """ADD and CHECK at 10,000 reservations open no more files than at 10: files read before (or
    written by pycni) are known by name and inode, so only the few new ones are read. ADD still
    lists the directory (getdents64 grows with its size) to see what the reference added."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    small_add, small_check = _add_check_syscalls(host_local, tmp_path / "small", 10, reference_adds=3)
    large_add, large_check = _add_check_syscalls(host_local, tmp_path / "large", 10_000, reference_adds=3)
    assert large_check == small_check or (
        large_check["openat"] == small_check["openat"] and large_check.get("getdents64") == small_check.get("getdents64")
        and large_check["total"] <= small_check["total"] * 1.2), (small_check, large_check)
    assert large_add["openat"] == small_add["openat"], (small_add, large_add)
    assert large_add["total"] <= small_add["total"] * 1.2, (small_add, large_add)
