"""Handlers in-process through shared.skel.run, exactly as the executable runs them."""
from __future__ import annotations

import json
import os
import time

import pytest

from ipam_hostlocal import handlers
from ipam_hostlocal.boot import BootInfo
from ipam_hostlocal.main import PLUGIN
from shared import skel
from shared.types import Result
from shared.version import ALL_VERSIONS


def run(command, config, cid="c1", ifname="eth0", args="", netns="/var/run/netns/pycni-test-none"):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_ARGS": args, "CNI_PATH": "/nonexistent"}
    stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
    out = skel.run(PLUGIN, env, lambda: stdin)
    body = json.loads(out.stdout) if out.stdout.strip() else None
    if out.exit_code:
        assert body is not None and set(body) >= {"code", "msg"}, out
    return out.exit_code, body


def conf(data_dir, ranges=None, version="1.1.0", **ipam):
    return {"cniVersion": version, "name": "net1",
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": ranges if ranges is not None else [[{"subnet": "10.1.2.0/24"}]], **ipam}}


def reservations(data_dir, name="net1"):
    d = os.path.join(data_dir, name)
    if not os.path.isdir(d):
        return {}
    return {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)
            if not n.startswith(".") and n != "lock"}


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[p] = open(p, "rb").read() if os.path.isfile(p) else None
    return out


@pytest.fixture(autouse=True)
def real_boot(monkeypatch):
    monkeypatch.setattr(handlers, "boot_source", handlers.current_boot)


def test_add_result_and_files(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]],
             routes=[{"dst": "0.0.0.0/0"}])
    rc, body = run("ADD", c)
    assert rc == 0
    assert not body.pop("dns", {})  # "dns": {} or absent: the core's rendering choice
    assert body == {"cniVersion": "1.1.0", "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"},
                                                   {"address": "2001:db8::2/64", "gateway": "2001:db8::1"}],
                    "routes": [{"dst": "0.0.0.0/0"}]}
    assert reservations(tmp_path) == {"10.1.2.2": b"c1\r\neth0", "2001:db8::2": b"c1\r\neth0",
                                      "last_reserved_ip.0": b"10.1.2.2", "last_reserved_ip.1": b"2001:db8::2"}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_add_in_every_version(tmp_path, version):
    rc, body = run("ADD", conf(tmp_path, version=version))
    assert rc == 0 and body["cniVersion"] == version
    result = Result.from_json(body, version)
    assert [str(i.address) for i in result.ips] == ["10.1.2.2/24"]


def test_repeated_add_returns_the_same_lease(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]])
    first = run("ADD", c)
    assert run("ADD", c) == first
    assert run("ADD", c, ifname="eth1")[1]["ips"][0]["address"] == "10.1.2.3/24"
    assert len([n for n in reservations(tmp_path) if not n.startswith("last")]) == 4


def test_failed_multi_set_add_leaves_no_file(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/30"}]])
    assert run("ADD", c, cid="a")[0] == 0
    before = snapshot(tmp_path)
    rc, body = run("ADD", c, cid="b")
    assert rc == 1 and body["code"] == 100 and "range set: 10.1.3.1-10.1.3.2" in body["msg"]
    assert snapshot(tmp_path) == before


def test_requested_ips_from_all_three_sources(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}], [{"subnet": "10.1.4.0/24"}]])
    c["args"] = {"cni": {"ips": ["10.1.3.33"]}}
    c["runtimeConfig"] = {"ips": ["10.1.4.44/24"]}
    rc, body = run("ADD", c, args="IP=10.1.2.22")
    assert rc == 0
    assert [i["address"] for i in body["ips"]] == ["10.1.2.22/24", "10.1.3.33/24", "10.1.4.44/24"]
    assert reservations(tmp_path)["last_reserved_ip.1"] == b"10.1.3.33"  # requested addresses move the cursor
    rc, body = run("ADD", c, cid="c2", args="IP=10.1.2.22")
    assert rc == 1 and body["code"] == 101 and "10.1.2.22 is not available" in body["msg"]


def test_runtime_ip_ranges_capability(tmp_path):
    c = conf(tmp_path)
    c["runtimeConfig"] = {"ipRanges": [[{"subnet": "192.168.5.0/24", "rangeStart": "192.168.5.100"}]]}
    rc, body = run("ADD", c)
    assert [i["address"] for i in body["ips"]] == ["192.168.5.100/24", "10.1.2.2/24"]


def test_del_releases_and_is_idempotent(tmp_path):
    c = conf(tmp_path)
    run("ADD", c)
    run("ADD", c, cid="c2")
    assert run("DEL", c) == (0, None)
    assert run("DEL", c) == (0, None)
    assert sorted(reservations(tmp_path)) == ["10.1.2.3", "last_reserved_ip.0"]


def test_del_of_an_unknown_network_creates_nothing(tmp_path):
    assert run("DEL", conf(tmp_path / "sub")) == (0, None)
    assert not (tmp_path / "sub").exists()


def test_del_of_an_invalid_config_fails_with_the_schema_message(tmp_path):
    rc, body = run("DEL", conf(tmp_path, [[{"subnet": 7}]]))
    assert rc == 1 and body["code"] == 7 and "ipam.ranges[0][0].subnet" in body["msg"]


def test_check(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]])
    rc, body = run("CHECK", c)
    assert rc == 1 and body["code"] == 105 and body["msg"] == "host-local: Failed to find address added by container c1"
    _, result = run("ADD", c)
    assert run("CHECK", c) == (0, None)
    assert run("CHECK", {**c, "prevResult": result}) == (0, None)
    wrong = json.loads(json.dumps(result))
    wrong["ips"][0]["address"] = "10.1.2.99/24"
    rc, body = run("CHECK", {**c, "prevResult": wrong})
    assert rc == 1 and body["code"] == 106 and "10.1.2.99" in body["details"] and "10.1.2.2" in body["details"]
    partial = {**result, "ips": result["ips"][:1]}
    assert run("CHECK", {**c, "prevResult": partial})[1]["code"] == 106
    foreign = {**result, "ips": result["ips"] + [{"address": "192.0.2.5/24"}]}
    assert run("CHECK", {**c, "prevResult": foreign}) == (0, None)  # another IPAM's address is not ours to judge


def test_gc(tmp_path):
    c = conf(tmp_path)
    for cid, ifname in [("keep", "eth0"), ("drop", "eth0"), ("keep", "eth1")]:
        run("ADD", c, cid=cid, ifname=ifname)
    d = tmp_path / "net1"
    (d / "10.1.2.50").write_bytes(b"legacykeep")
    (d / "10.1.2.51").write_bytes(b"legacydrop")
    (d / "10.1.2.52").write_bytes(b"")
    gc = {**c, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"},
                                             {"containerID": "legacykeep", "ifname": "eth9"}]}
    assert run("GC", gc) == (0, None)
    assert sorted(reservations(tmp_path)) == ["10.1.2.2", "10.1.2.50", "last_reserved_ip.0"]
    assert (d / "lock").exists()
    assert os.listdir(tmp_path / ".pycni" / "net1" / "leases") == ["keep@eth0"]
    assert sorted(os.listdir(d)) == ["10.1.2.2", "10.1.2.50", "last_reserved_ip.0", "lock"]


def test_gc_and_status_need_110(tmp_path):
    for verb in ("GC", "STATUS"):
        rc, body = run(verb, conf(tmp_path, version="1.0.0"))
        assert rc == 1 and body["code"] == 1


def test_status(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/30"}]])
    assert run("STATUS", c) == (0, None)
    assert not (tmp_path / "net1").exists()
    run("ADD", c)
    rc, body = run("STATUS", c)
    assert rc == 1 and body["code"] == 50 and "range set 0" in body["msg"]
    (tmp_path / "afile").write_text("x")
    rc, body = run("STATUS", conf(tmp_path / "afile" / "sub"))
    assert rc == 1 and body["code"] == 50 and "not a directory" in body["details"]


def test_add_reclaims_garbage_from_a_crashed_writer(tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/30"}]])
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.1.2.2").write_bytes(b"")
    (d / ".pycni-tmp.123.abcd").write_bytes(b"c9\r\neth0")
    rc, body = run("ADD", c)
    assert rc == 0 and body["ips"][0]["address"] == "10.1.2.2/30"
    assert (d / "10.1.2.2").read_bytes() == b"c1\r\neth0"
    assert not (d / ".pycni-tmp.123.abcd").exists()


@pytest.mark.parametrize("reclaim", [True, False])
def test_reservations_from_before_a_reboot(tmp_path, monkeypatch, reclaim):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/30"}]], reclaimAfterReboot=reclaim)
    assert run("ADD", c, cid="before")[0] == 0
    boot = BootInfo("a-new-boot", time.time() + 1)  # "reboot": every file now predates the boot
    monkeypatch.setattr(handlers, "boot_source", lambda: boot)
    rc, body = run("ADD", c, cid="after")
    if reclaim:
        assert rc == 0 and body["ips"][0]["address"] == "10.1.2.2/30"
        assert reservations(tmp_path)["10.1.2.2"] == b"after\r\neth0"
        # the check ran once for this boot: the new reservation (older than "boot" too) is kept
        rc, body = run("ADD", c, cid="third")
        assert rc == 1 and body["code"] == 100
    else:
        assert rc == 1 and body["code"] == 100


def test_a_container_readded_after_a_reboot_keeps_its_address(tmp_path, monkeypatch):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/29"}]])
    run("ADD", c, cid="other")
    _, first = run("ADD", c, cid="podman1")
    monkeypatch.setattr(handlers, "boot_source", lambda: BootInfo("a-new-boot", time.time() + 1))
    rc, again = run("ADD", c, cid="podman1")
    assert rc == 0 and again == first
    assert sorted(reservations(tmp_path)) == ["10.1.2.3", "last_reserved_ip.0"]  # "other" was reclaimed


def test_resolv_conf(tmp_path):
    rc_file = tmp_path / "resolv.conf"
    rc_file.write_text("nameserver 192.0.2.53\nsearch example.org\n")
    rc, body = run("ADD", conf(tmp_path, resolvConf=str(rc_file)))
    assert body["dns"] == {"nameservers": ["192.0.2.53"], "search": ["example.org"]}
    rc, body = run("ADD", conf(tmp_path / "other", resolvConf=str(tmp_path / "missing")))
    assert rc == 1 and body["code"] == 5
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("stdin,code", [
    (b"{", 6), (b'{"cniVersion": "1.1.0", "name": "net1", "ipam": ', 6), (b"[]", 6),
    (b'{"cniVersion": "9.9.9", "name": "net1", "ipam": {}}', 1),
    (b'{"cniVersion": "1.1.0", "name": "../../etc", "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}]]}}', 7),
    (b'{"cniVersion": "1.1.0", "name": "net1", "ipam": "x"}', 7),
])
def test_bad_input_changes_nothing(tmp_path, stdin, code):
    before = snapshot(tmp_path)
    for verb in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        rc, body = run(verb, stdin)
        assert rc == 1 and body["code"] == code, (verb, body)
    assert snapshot(tmp_path) == before


def test_repeated_add_indexes_a_lease_the_reference_made(tmp_path):
    c = conf(tmp_path)
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.1.2.9").write_bytes(b"c1\r\neth0")  # as the reference writes it: no index entry
    before = (d / "10.1.2.9").stat().st_mtime_ns
    rc, body = run("ADD", c)
    assert rc == 0 and body["ips"][0]["address"] == "10.1.2.9/24"
    assert (tmp_path / ".pycni" / "net1" / "leases" / "c1@eth0").read_text().split("\n")[3] == "10.1.2.9"
    assert (d / "10.1.2.9").stat().st_mtime_ns == before
