"""A real container runtime on our plugins: podman (Debian's, CNI backend) runs two busybox
containers on a network served by `bridge` + `host-local`, inside a namespace this test made.

Checks that podman's view (inspect) matches what is configured inside each container, that
`podman run --ip` is honoured, that the containers reach each other, and that removing them frees
their reservations and leaves no veth, firewall rule or libcni cache entry behind. The same test
runs against the Go reference plugins (/usr/lib/cni) as a control.
"""
from __future__ import annotations

import ipaddress
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.podman_env import Podman, build_image_tar, missing_tools
from tests.support.netns import unique
from tests.support.warm import WorkerMoves

pytestmark = [pytest.mark.root]


def _podman(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory, warm: bool) -> Iterator[Podman]:
    if os.geteuid() != 0:
        pytest.skip("podman with the CNI backend needs root (network namespaces, cgroups)")
    missing = missing_tools()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (set-up installs podman runc conmon busybox-static)")
    pm = Podman(workdir=tmp_path_factory.mktemp("podman"), plugin_dir=plugin_dir,
                network=unique("pycnie2e"), subnet_prefix=f"10.231.{random.randint(0, 254)}", warm=warm)
    try:
        pm.start()
        yield pm
    finally:
        problems = pm.stop()
        print("\n".join(pm.log))
        assert not problems, f"clean-up left things behind: {problems}"


@pytest.fixture
def podman(plugins: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    yield from _podman(plugins, tmp_path_factory, warm=False)


@pytest.fixture
def podman_warm(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    yield from _podman(plugin_dir, tmp_path_factory, warm=True)


@dataclass(frozen=True)
class Seen:
    address: str  # dotted IP
    prefix: int
    gateway: str
    mac: str


def podman_view(pm: Podman, name: str) -> Seen:
    net = pm.inspect(name)["NetworkSettings"]["Networks"][pm.network]
    return Seen(net["IPAddress"], int(net["IPPrefixLen"]), net["Gateway"], net["MacAddress"].lower())


def container_view(pm: Podman, name: str) -> Seen:
    """What is really configured on eth0 inside the container (busybox ip)."""
    addrs = pm.exec(name, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout.split()
    cidr = ipaddress.ip_interface(addrs[addrs.index("inet") + 1])
    route = pm.exec(name, "ip", "route", "show", "default").stdout.split()
    link = pm.exec(name, "ip", "-o", "link", "show", "dev", "eth0").stdout.split()
    return Seen(str(cidr.ip), cidr.network.prefixlen, route[route.index("via") + 1],
                link[link.index("link/ether") + 1].lower())


def reservations(pm: Podman) -> dict[str, str]:
    """host-local's reservation files (one per IP) in the test's dataDir."""
    out = {}
    for path in (pm.data_dir / pm.network).glob("*"):
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        out[path.name] = path.read_text()
    return out


def firewall_dump(pm: Podman) -> str:
    text = pm.host_cmd("iptables-save") + pm.host_cmd("ip6tables-save")
    if shutil.which("nft"):
        text += pm.host_cmd("nft", "list", "ruleset")
    return text


def test_podman_containers_on_bridge_and_host_local(podman: Podman) -> None:
    _two_containers(podman)


def test_podman_with_the_warm_server(podman_warm: Podman) -> None:
    """The same scenario with `pycni serve` running: every call podman makes is handed over (the
    server's workers join the callers' namespaces) and the outcome is the same."""
    assert podman_warm.server is not None
    moves = WorkerMoves(podman_warm.server.pid)
    moves.start()
    try:
        _two_containers(podman_warm)
    finally:
        served = moves.stop()
    # podman: 2 ADDs (each with host-local in-process), 2 DELs at least
    assert served >= 4, f"only {served} calls were seen in the server's workers"


def _two_containers(pm: Podman) -> None:
    started = time.monotonic()
    pm.import_image(build_image_tar(pm.workdir))
    static_ip = f"{pm.subnet_prefix}.77"
    ids = {"c1": pm.run("c1"), "c2": pm.run("c2", "--ip", static_ip)}

    seen = {}
    for name in ids:
        outside, inside = podman_view(pm, name), container_view(pm, name)
        assert outside == inside, f"{name}: podman inspect says {outside}, the container has {inside}"
        assert ipaddress.ip_address(inside.address) in ipaddress.ip_network(pm.subnet)
        assert inside.gateway == pm.gateway and inside.prefix == 24
        seen[name] = inside
    assert seen["c2"].address == static_ip, "podman run --ip was not honoured"
    assert seen["c1"].address != seen["c2"].address

    held = reservations(pm)
    assert set(held) == {seen["c1"].address, seen["c2"].address}, f"reservations: {held}"
    for name, cid in ids.items():
        assert held[seen[name].address].startswith(cid), f"{name}'s reservation names {held[seen[name].address]!r}"
    assert len(list((pm.cni_cache / "results").glob(f"{pm.network}-*-eth0"))) == 2, "libcni cached no results"

    for src, dst in (("c1", "c2"), ("c2", "c1")):
        res = pm.exec(src, "ping", "-c", "1", "-W", "3", seen[dst].address, check=False)
        assert res.returncode == 0, f"{src} cannot reach {dst} at {seen[dst].address}:\n{res.stdout}{res.stderr}"

    rules = firewall_dump(pm)
    for name in ids:
        assert seen[name].address in rules, f"no masquerade rule mentions {name}'s address {seen[name].address}"
    assert pm.host_cmd("ip", "-o", "link", "show", "type", "veth").count("\n") == 2

    pm.podman("rm", "--force", "--time", "0", "c1", "c2")

    assert reservations(pm) == {}, "removing the containers did not free their addresses"
    assert pm.host_cmd("ip", "-o", "link", "show", "type", "veth") == "", "host-side veths left behind"
    rules = firewall_dump(pm)
    for name, cid in ids.items():
        assert seen[name].address not in rules and cid not in rules, f"firewall rules for {name} left behind"
    assert list((pm.cni_cache / "results").glob("*")) == [], "libcni cache entries left behind"
    assert time.monotonic() - started < 60, "podman end-to-end took over 60 s"
