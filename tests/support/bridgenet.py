"""A throw-away bridge network for tests: a private "host" namespace the plugin runs in, container
namespaces, a private IPAM data dir, and helpers to invoke the bridge (in-process or as the installed
executable) and to inspect what is left behind.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import sys
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tests.support.netns import Namespace, create, delete, run_in
from tests.support.plugin import cni_env


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    def __str__(self) -> str:
        return f"rc={self.returncode} stdout={self.stdout.decode(errors='replace')} stderr={self.stderr.decode(errors='replace')[-2000:]}"


def _invoke_in_process(env: dict[str, str], stdin: bytes) -> tuple[bytes, int, str]:
    from bridge_plugin.main import PLUGIN
    from shared import skel

    out = skel.run(PLUGIN, env, lambda: stdin)
    return out.stdout, out.exit_code, out.stderr


@dataclass
class BridgeNet:
    host: Namespace
    bin_dir: Path
    data_dir: Path
    containers: list[Namespace] = field(default_factory=list)
    bridge: str = field(default_factory=lambda: "br" + secrets.token_hex(4))
    name: str = field(default_factory=lambda: "net-" + secrets.token_hex(3))
    subnet: str = "10.77.0.0/24"
    ipam_type: str = "host-local"
    path: str = ""  # CNI_PATH; defaults to bin_dir

    # -- building requests --------------------------------------------------------------------
    def ipam(self, *subnets: str, **extra: Any) -> dict[str, Any]:
        nets = subnets or (self.subnet,)
        return {"type": self.ipam_type, "dataDir": str(self.data_dir),
                "ranges": [[{"subnet": s}] for s in nets], **extra}

    def config(self, version: str = "1.1.0", l3: bool = True, **keys: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": self.name, "type": "bridge", "bridge": self.bridge}
        if l3:
            conf["ipam"] = self.ipam()
        conf.update(keys)
        return conf

    def env(self, command: str, cid: str, netns: str, ifname: str = "eth0", args: str = "",
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return cni_env(command, container_id=cid, netns=netns, ifname=ifname, args=args,
                       path=self.path or str(self.bin_dir), extra=extra)

    def call(self, command: str, config: Mapping[str, Any] | bytes, cid: str = "c1",
             netns: Namespace | str | None = None, ifname: str = "eth0", args: str = "",
             extra: Mapping[str, str] | None = None, binary: str | None = None) -> Run:
        """In-process (skel.run in a child that joined the host namespace) unless `binary` is given,
        then the executable is exec'd inside the host namespace like a runtime would."""
        if netns is None:
            netns = self.containers[0] if self.containers else ""
        path = netns.path if isinstance(netns, Namespace) else netns
        stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
        env = self.env(command, cid, path, ifname, args, extra)
        if binary is None:
            out, rc, err = run_in(self.host, _invoke_in_process, env, stdin)
            return Run(rc, out, err.encode())
        nsenter = shutil.which("nsenter") or "nsenter"  # absolute: the plugin's env may carry any PATH
        proc = subprocess.run([nsenter, f"--net={self.host.path}", "--", binary], input=stdin, env=env,
                              capture_output=True, timeout=60, check=False)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def add(self, config: Mapping[str, Any], **kw: Any) -> Run:
        return self.call("ADD", config, **kw)

    def delete(self, config: Mapping[str, Any], **kw: Any) -> Run:
        return self.call("DEL", config, **kw)

    def check(self, config: Mapping[str, Any], result: Any, **kw: Any) -> Run:
        return self.call("CHECK", {**config, "prevResult": result}, **kw)

    # -- inspection ---------------------------------------------------------------------------
    @staticmethod
    def links(ns: Namespace) -> list[dict[str, Any]]:
        out = ns.ip("-d", "-j", "link", "show").stdout
        return json.loads(out) if out.strip() else []

    @staticmethod
    def link(ns: Namespace, name: str) -> dict[str, Any] | None:
        res = ns.ip("-d", "-j", "link", "show", "dev", name, check=False)
        if res.returncode != 0:
            return None
        return json.loads(res.stdout)[0]

    @staticmethod
    def addrs(ns: Namespace, name: str) -> list[str]:
        res = ns.ip("-j", "addr", "show", "dev", name, check=False)
        if res.returncode != 0:
            return []
        info = json.loads(res.stdout)[0]
        return [f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", [])]

    @staticmethod
    def routes(ns: Namespace, family: str = "-4") -> list[dict[str, Any]]:
        return json.loads(ns.ip(family, "-j", "route", "show").stdout or "[]")

    def host_veths(self) -> list[str]:
        return [link["ifname"] for link in self.links(self.host)
                if link.get("linkinfo", {}).get("info_kind") == "veth"]

    def reservations(self, network: str | None = None) -> list[str]:
        """Files in the IPAM store that are reservations (named like an address) or index entries."""
        d = self.data_dir / (network or self.name)
        if not d.is_dir():
            return []
        found = []
        for entry in d.iterdir():
            try:
                ipaddress.ip_address(entry.name.replace("_", ":"))
                found.append(entry.name)
            except ValueError:
                if entry.name == ".pycni-leases" and entry.is_dir():
                    found.extend(f".pycni-leases/{p.name}" for p in entry.iterdir())
        return sorted(found)

    def assert_clean(self, containers: Sequence[Namespace] | None = None, ifname: str = "eth0") -> None:
        """Nothing of any attachment left: no veth in the host, no CNI_IFNAME in the containers, no reservation."""
        assert self.host_veths() == [], f"veths left in the host namespace: {self.host_veths()}"
        for ns in containers if containers is not None else self.containers:
            assert self.link(ns, ifname) is None, f"{ifname} left in {ns.name}"
        assert self.reservations() == [], f"reservations left: {self.reservations()}"


def make_net(bin_dir: Path, data_dir: Path, containers: int = 1, **kw: Any) -> BridgeNet:
    host = create("pycni-brh")
    net = BridgeNet(host=host, bin_dir=bin_dir, data_dir=data_dir, **kw)
    try:
        for _ in range(containers):
            net.containers.append(create("pycni-brc"))
    except BaseException:
        destroy(net)
        raise
    return net


def destroy(net: BridgeNet) -> None:
    for ns in [*net.containers, net.host]:
        delete(ns)


@contextmanager
def bridge_net(bin_dir: Path, data_dir: Path, containers: int = 1, **kw: Any) -> Iterator[BridgeNet]:
    """A host namespace and `containers` container namespaces, removed however the test ends."""
    net = make_net(bin_dir, data_dir, containers, **kw)
    try:
        yield net
    finally:
        destroy(net)


def tcp_reach(src: Namespace, dst: Namespace, address: str, port: int = 8080, timeout: float = 3.0) -> bool:
    """Listen in `dst` on `address`, connect from `src`: both ends are processes in the test's namespaces."""
    proc = subprocess.Popen(["nsenter", f"--net={dst.path}", "--", sys.executable, "-c", _SERVER, address, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline() if proc.stdout else ""
        if ready.strip() != "ready":
            return False
        res = src.exec([sys.executable, "-c", _CLIENT, address, str(port), str(timeout)], capture_output=True, text=True,
                       timeout=timeout + 5)
        return res.returncode == 0 and res.stdout.strip() == "pong"
    finally:
        proc.kill()
        proc.wait()


_SERVER = """
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print('ready', flush=True)
s.settimeout(10)
c, _ = s.accept()
c.sendall(b'pong')
c.close()
"""

_CLIENT = """
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print(s.recv(16).decode())
"""
