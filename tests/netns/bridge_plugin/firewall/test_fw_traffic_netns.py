"""Masquerade on the wire: client netns -> bridge in a "host" netns -> "outside" netns with a TCP server.

The outside namespace has no route back to the container subnet, so a connection only works when the
host masquerades it; the server then sees the host's outside address. All three namespaces are made
by the test.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from ipaddress import ip_interface
from typing import Iterator

import pytest

import bridge_plugin.firewall as fw
from bridge_plugin.firewall._model import Attachment
from tests.support.netns import Namespace, namespaces, run_in

from fw_netns_support import require, tools_for

SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(10)
print("ready", flush=True)
conn, peer = s.accept()
print(peer[0], flush=True)
conn.close()
"""

ATT = Attachment("trafficnet", "client1", "eth0")
CLIENT_IPS = [ip_interface("10.77.0.2/24"), ip_interface("fd00:77::2/64")]


@pytest.fixture
def topology() -> Iterator[tuple[Namespace, Namespace, Namespace]]:
    with namespaces(3, "pycni-fwt") as (client, host, outside):
        host.ip("link", "add", "br0", "type", "bridge")
        host.ip("addr", "add", "10.77.0.1/24", "dev", "br0")
        host.ip("addr", "add", "fd00:77::1/64", "dev", "br0", "nodad")
        host.ip("link", "set", "br0", "up")
        host.ip("link", "add", "vr0", "type", "veth", "peer", "name", "eth0", "netns", client.name)
        host.ip("link", "set", "vr0", "master", "br0", "up")
        client.ip("addr", "add", "10.77.0.2/24", "dev", "eth0")
        client.ip("addr", "add", "fd00:77::2/64", "dev", "eth0", "nodad")
        client.ip("link", "set", "eth0", "up")
        client.ip("route", "add", "default", "via", "10.77.0.1")
        client.ip("-6", "route", "add", "default", "via", "fd00:77::1")
        host.ip("link", "add", "vo0", "type", "veth", "peer", "name", "eth0", "netns", outside.name)
        host.ip("addr", "add", "192.0.2.1/24", "dev", "vo0")
        host.ip("addr", "add", "2001:db8::1/64", "dev", "vo0", "nodad")
        host.ip("link", "set", "vo0", "up")
        outside.ip("addr", "add", "192.0.2.2/24", "dev", "eth0")
        outside.ip("addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
        outside.ip("link", "set", "eth0", "up")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            host.exec(["sysctl", "-q", "-w", key], check=True)
        yield client, host, outside


def _connect(addr: str, port: int, timeout: float) -> bool:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False


def source_seen(client: Namespace, outside: Namespace, addr: str, port: int, timeout: float = 5.0) -> str | None:
    """Connect from the client to a server in `outside`; the peer address the server saw, or None."""
    server = subprocess.Popen(["nsenter", f"--net={outside.path}", "--", sys.executable, "-c", SERVER, addr,
                               str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    try:
        assert server.stdout.readline().strip() == "ready"
        if not run_in(client, _connect, addr, port, timeout):
            return None
        return server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_outside_server_sees_the_host_address(topology: tuple[Namespace, Namespace, Namespace],
                                              backend: str) -> None:
    require(tools_for(backend))
    client, host, outside = topology
    assert source_seen(client, outside, "192.0.2.2", 8080, timeout=0.7) is None  # no way back without NAT
    run_in(host, fw.setup_masquerade, backend, ATT, CLIENT_IPS)
    assert source_seen(client, outside, "192.0.2.2", 8081) == "192.0.2.1"
    assert source_seen(client, outside, "2001:db8::2", 8082) == "2001:db8::1"
    run_in(host, fw.teardown_masquerade, ATT, [])
    assert source_seen(client, outside, "192.0.2.2", 8083, timeout=0.7) is None


def test_spoofcheck_drops_frames_from_a_foreign_mac(topology: tuple[Namespace, Namespace, Namespace]) -> None:
    require(["nft"])
    client, host, _ = topology
    mac = json.loads(client.ip("-j", "link", "show", "eth0").stdout)[0]["address"]
    run_in(host, fw.setup_spoofcheck, ATT, "vr0", mac)
    assert source_seen(client, host, "10.77.0.1", 8090) == "10.77.0.2"
    client.ip("link", "set", "eth0", "address", "02:de:ad:be:ef:01")  # the container spoofs its MAC
    for ns in (client, host):
        ns.ip("neigh", "flush", "all")
    assert source_seen(client, host, "10.77.0.1", 8091, timeout=0.7) is None
    run_in(host, fw.teardown_spoofcheck, ATT)
    assert source_seen(client, host, "10.77.0.1", 8092) == "10.77.0.2"  # the check, not the MAC, dropped it
