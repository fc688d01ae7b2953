"""Interop with the Go reference host-local (Debian's containernetworking-plugins) on one dataDir,
and agreement with it on results and files for the same inputs."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.plugin import cni_env, run_plugin

pytestmark = pytest.mark.interop
VERSION = "1.0.0"  # the newest version Debian's 1.1.1 reference accepts


@pytest.fixture
def impls(plugin_dir, reference_dir):
    return {"ours": str(plugin_dir / "host-local"), "ref": str(reference_dir / "host-local")}


def conf(data_dir, ranges=None, version=VERSION, name="net1", **ipam):
    return {"cniVersion": version, "name": name,
            "ipam": {"type": "host-local", "dataDir": str(data_dir),
                     "ranges": ranges if ranges is not None else [[{"subnet": "10.1.2.0/24"}]], **ipam}}


def call(binary, command, config, cid="c1", ifname="eth0", args=""):
    return run_plugin(binary, cni_env(command, cid, "/var/run/netns/pycni-hl-none", ifname, args, "/nonexistent"), config)


def normalised(out):
    """A result or an error, with the documented, non-behavioural differences taken out."""
    body = out.json
    if body is None:
        return (out.returncode, None)
    if out.returncode == 0:
        if body.get("dns") == {}:
            del body["dns"]  # the reference prints "dns": {} for an empty DNS; an empty value either way
        return (0, body)
    return (1, body["msg"])  # codes differ on purpose: the reference says 999 for everything


def tree(data_dir):
    """Every file of the network directories: name -> content (modes differ: Debian's 1.1.1 predates 0600)."""
    out = {}
    for net in sorted(os.listdir(data_dir)):
        if net.startswith("."):
            continue  # pycni's own bookkeeping lives outside the network directories
        for name in sorted(os.listdir(os.path.join(data_dir, net))):
            out[f"{net}/{name}"] = open(os.path.join(data_dir, net, name), "rb").read()
    return out


def addresses(out):
    return [ip["address"] for ip in out.json["ips"]]


def test_alternating_adds_then_del_by_the_other(impls, tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8::/64"}]])
    owner = {}
    seen = []
    for i in range(16):
        who = "ours" if i % 2 == 0 else "ref"
        out = call(impls[who], "ADD", c, cid=f"ctr{i}")
        assert out.ok, (who, out)
        owner[f"ctr{i}"] = who
        seen.append(addresses(out))
    # one round robin shared through last_reserved_ip.N: exactly what one implementation would hand out
    assert seen == [[f"10.1.2.{i + 2}/24", f"2001:db8::{i + 2:x}/64"] for i in range(16)]
    for cid, who in owner.items():
        other = "ref" if who == "ours" else "ours"
        assert call(impls[other], "DEL", c, cid=cid).ok
    assert sorted(os.listdir(tmp_path / "net1")) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_parallel_mixed_adds_never_share_an_address(impls, tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/24"}]])
    procs = []
    for i in range(32):
        who = "ours" if i % 2 else "ref"
        env = cni_env("ADD", f"m{i}", "/var/run/netns/pycni-hl-none", "eth0", "", "/nonexistent")
        p = subprocess.Popen([impls[who]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        p.stdin.write(json.dumps(c).encode())
        p.stdin.close()
        procs.append(p)
    got = []
    for p in procs:
        out = p.stdout.read()
        p.stderr.read()
        assert p.wait(timeout=120) == 0, out
        got.append(json.loads(out)["ips"][0]["address"])
    assert len(set(got)) == 32
    files = [n for n in os.listdir(tmp_path / "net1") if n[0].isdigit() and not n.startswith("last")]
    assert len(files) == 32


SAME_INPUT_CASES = {
    "two sets": dict(ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]]),
    "legacy range": dict(ranges=[], subnet="10.9.0.0/29", rangeStart="10.9.0.3", gateway="10.9.0.5",
                         routes=[{"dst": "0.0.0.0/0", "gw": "10.9.0.5"}, {"dst": "10.8.0.0/16"}]),
    "slices and wrap": dict(ranges=[[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.10", "rangeEnd": "10.1.2.11"},
                                     {"subnet": "10.1.3.0/30"}]]),
    "tiny /30": dict(ranges=[[{"subnet": "10.1.2.0/30"}]]),
    "gateway mid-range": dict(ranges=[[{"subnet": "10.1.2.0/29", "gateway": "10.1.2.3"}]]),
    "go key matching": dict(ranges=[[{"Subnet": "10.1.2.0/29", "RANGESTART": "10.1.2.4", "gateway": "10.1.2.6",
                                      "Gateway": "10.1.2.5"}]]),
}


@pytest.mark.parametrize("case", SAME_INPUT_CASES)
def test_same_inputs_same_results_and_files(impls, tmp_path, case):
    ipam = dict(SAME_INPUT_CASES[case])
    outs = {}
    for who, binary in impls.items():
        c = conf(tmp_path / who, **ipam)
        if not ipam["ranges"]:
            del c["ipam"]["ranges"]
        steps = [("ADD", f"a{i}", "") for i in range(7)] + [("DEL", "a1", ""), ("DEL", "a3", ""),
                                                           ("ADD", "b1", ""), ("ADD", "b2", "")]
        outs[who] = [normalised(call(binary, verb, c, cid=cid, args=args)) for verb, cid, args in steps]
        outs[who].append(tree(tmp_path / who))
    assert outs["ours"] == outs["ref"]


def test_requested_ips_agree(impls, tmp_path):
    outs = {}
    for who, binary in impls.items():
        c = conf(tmp_path / who, [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.3.0/24"}]])
        c["runtimeConfig"] = {"ips": ["10.1.3.77/24"]}
        steps = [call(binary, "ADD", c, cid="x", args="IP=10.1.2.50"),
                 call(binary, "ADD", {**c, "runtimeConfig": {}}, cid="y"),
                 call(binary, "ADD", c, cid="z", args="IP=10.1.2.1"),
                 call(binary, "ADD", c, cid="w", args="IP=10.1.2.50")]
        outs[who] = [normalised(o) for o in steps] + [tree(tmp_path / who)]
    assert outs["ours"] == outs["ref"]
    assert outs["ours"][1][1]["ips"][0]["address"] == "10.1.2.51/24"  # requested addresses move the cursor


CONFIG_ERRORS = [
    {"ranges": [[{"subnet": "10.1.2.0/31"}]]},
    {"ranges": [[{"subnet": "2001:db8::/127"}]]},
    {"ranges": [[{"subnet": "10.1.2.5/24"}]]},
    {"ranges": [[{"subnet": "10.1.2.0/24", "rangeStart": "10.1.3.1"}]]},
    {"ranges": [[{"subnet": "10.1.2.0/24", "rangeEnd": "10.1.3.1"}]]},
    {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "2001:db8::/64"}]]},
    {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.2.0/25"}]]},
    {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.2.128/25"}]]},
    {"ranges": [[]]},
    {"ranges": []},
]


@pytest.mark.parametrize("ipam", CONFIG_ERRORS, ids=[json.dumps(c)[:60] for c in CONFIG_ERRORS])
def test_config_errors_agree(impls, tmp_path, ipam):
    msgs = {}
    for who, binary in impls.items():
        out = call(binary, "ADD", conf(tmp_path / who, **ipam))
        assert out.returncode == 1
        msgs[who] = out.json["msg"]
    assert msgs["ours"] == msgs["ref"]
    assert call(impls["ours"], "ADD", conf(tmp_path / "ours", **ipam)).json["code"] == 7
    assert not (tmp_path / "ours").exists()


def test_switching_from_the_reference_keeps_every_reservation(impls, tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/29"}]])
    for i in range(3):
        assert call(impls["ref"], "ADD", c, cid=f"r{i}").ok
    (tmp_path / "net1" / "10.1.2.6").write_bytes(b"legacy")  # a pre-2018 reservation: container ID only
    assert addresses(call(impls["ours"], "ADD", c, cid="o1")) == ["10.1.2.5/29"]
    assert call(impls["ours"], "ADD", c, cid="o2").json["code"] == 100  # .6 is still held
    # our ADD for a container the reference served returns its lease instead of failing
    assert addresses(call(impls["ours"], "ADD", c, cid="r1")) == ["10.1.2.3/29"]
    assert call(impls["ref"], "ADD", c, cid="r1").json["code"] == 999  # the reference's duplicate error
    assert call(impls["ours"], "CHECK", c, cid="legacy", ifname="eth3").ok
    assert call(impls["ours"], "DEL", c, cid="legacy", ifname="eth3").ok
    assert not (tmp_path / "net1" / "10.1.2.6").exists()
    # and switching back: the reference sees and releases what we reserved
    assert call(impls["ref"], "CHECK", {**c, "cniVersion": "0.4.0"}, cid="o1").ok
    assert call(impls["ref"], "DEL", c, cid="o1").ok
    assert not (tmp_path / "net1" / "10.1.2.5").exists()


def test_empty_file_left_by_a_crashed_reference_is_reclaimed(impls, tmp_path):
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/30"}]])
    (tmp_path / "net1").mkdir()
    (tmp_path / "net1" / "10.1.2.2").write_bytes(b"")
    assert call(impls["ref"], "ADD", c, cid="r").json["msg"].startswith("failed to allocate for range 0: no IP")
    assert addresses(call(impls["ours"], "ADD", c, cid="o")) == ["10.1.2.2/30"]


def test_catalog_follows_what_the_reference_adds_and_removes(impls, tmp_path):
    """pycni remembers files it has read by (name, inode); the reference changes the directory
    between pycni's calls. Every call must still see the directory as it is now."""
    ours, ref = impls["ours"], impls["ref"]
    c = conf(tmp_path, [[{"subnet": "10.1.2.0/28"}]])  # 13 addresses: the round robin wraps quickly
    held = {}
    for i in range(4):
        out = call(ours, "ADD", c, cid=f"p{i}")
        assert out.returncode == 0, out
        held[f"p{i}"] = addresses(out)
    assert call(ref, "DEL", c, cid="p1").returncode == 0       # a file pycni catalogued is gone ...
    del held["p1"]
    out = call(ref, "ADD", c, cid="r1", args="IP=" + "10.1.2.3")  # ... and its name is reused by the reference
    assert out.returncode == 0, out
    held["r1"] = addresses(out)
    for i in range(3):
        out = call(ref, "ADD", c, cid=f"r{i + 2}")
        assert out.returncode == 0, out
        held[f"r{i + 2}"] = addresses(out)
    again = call(ours, "ADD", c, cid="r1")  # a repeated ADD finds the reference's lease
    assert again.returncode == 0 and addresses(again) == held["r1"], again
    assert call(ours, "CHECK", dict(c, prevResult=again.json), cid="r1").returncode == 0
    assert call(ours, "CHECK", c, cid="p1").returncode != 0  # released by the reference
    for i in range(4, 10):  # the rest of the range: never an address someone holds
        out = call(ours, "ADD", c, cid=f"p{i}")
        assert out.returncode == 0, out
        held[f"p{i}"] = addresses(out)
    flat = [a for v in held.values() for a in v]
    assert len(flat) == len(set(flat)) == 13
    assert call(ours, "ADD", c, cid="full").returncode != 0
    files = tree(tmp_path)
    for cid, (addr,) in held.items():
        assert files[f"net1/{addr.split('/')[0]}"] == f"{cid}\r\neth0".encode()
