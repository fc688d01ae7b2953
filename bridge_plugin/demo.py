"""`pycni demo` / `python -m bridge_plugin.demo`: two containers on a bridge network, shown talking.

Everything happens in namespaces made here: a private "host" namespace where the plugin runs (as a
runtime would run it), and two container namespaces. The plugins are installed into a temporary bin
dir, the IPAM store lives in a temporary dir, and every namespace is removed at the end, also after
a failure or Ctrl-C. Nothing touches the machine's own network namespace.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SUBNET = "10.88.0.0/24"
GATEWAY = "10.88.0.1"

_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(1)
print("ready", flush=True)
s.settimeout(10)
c, peer = s.accept()
c.sendall(("hello " + peer[0] + ", this is " + sys.argv[1]).encode()); c.close()
"""
_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 7777), timeout=3)
print(s.recv(200).decode())
"""


class Demo:
    def __init__(self, masquerade: bool) -> None:
        tag = secrets.token_hex(3)
        self.host = f"pycni-demo-host-{tag}"
        self.containers = [f"pycni-demo-a-{tag}", f"pycni-demo-b-{tag}"]
        self.made: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="pycni-demo-"))
        self.bin_dir = self.tmp / "bin"
        self.data_dir = self.tmp / "ipam"
        self.config: dict[str, Any] = {
            "cniVersion": "1.1.0", "name": "demo-net", "type": "bridge", "bridge": "cni-demo0",
            "isGateway": True, "isDefaultGateway": True, "ipMasq": masquerade,
            "ipam": {"type": "host-local", "dataDir": str(self.data_dir), "ranges": [[{"subnet": SUBNET}]]},
        }

    # -- scaffolding ------------------------------------------------------------------------------
    def netns_add(self, name: str) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.made.append(name)
        self.in_ns(name, ["ip", "link", "set", "lo", "up"])

    def in_ns(self, name: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net=/run/netns/{name}", "--", *argv], text=True,
                              capture_output=True, **kw)

    def cleanup(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def plugin(self, command: str, container: str, cid: str, config: dict[str, Any]) -> dict[str, Any] | None:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": cid, "CNI_NETNS": f"/run/netns/{container}", "CNI_IFNAME": "eth0",
               "CNI_PATH": str(self.bin_dir)}
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{self.host}", "--", str(self.bin_dir / "bridge")],
                              input=json.dumps(config), env=env, text=True, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise SystemExit(f"bridge {command} for {cid} failed:\n{proc.stdout}{proc.stderr}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def talk(self, server_ns: str, address: str, client_ns: str) -> str:
        server = subprocess.Popen(["nsenter", f"--net=/run/netns/{server_ns}", "--", sys.executable, "-c",
                                   _SERVER, address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            if server.stdout is None or server.stdout.readline().strip() != "ready":
                return "FAILED (server did not start)"
            out = self.in_ns(client_ns, [sys.executable, "-c", _CLIENT, address], timeout=10)
            return out.stdout.strip() if out.returncode == 0 else f"FAILED ({out.stderr.strip().splitlines()[-1:]})"
        finally:
            server.kill()
            server.wait()

    def host_veths(self) -> list[str]:
        out = self.in_ns(self.host, ["ip", "-j", "link", "show", "type", "veth"]).stdout
        return [link["ifname"] for link in json.loads(out or "[]")]

    # -- the story --------------------------------------------------------------------------------
    def run(self) -> int:
        from shared.install import install

        print("1. Creating a private 'host' namespace and two container namespaces")
        self.netns_add(self.host)
        for name in self.containers:
            self.netns_add(name)
        print(f"   host: {self.host}   containers: {', '.join(self.containers)}")

        install(str(self.bin_dir))
        print(f"2. Installed the plugins into {self.bin_dir}")

        print(f"3. bridge ADD for both containers (bridge cni-demo0, host-local {SUBNET}, "
              f"ipMasq {str(self.config['ipMasq']).lower()})")
        results = {}
        for i, name in enumerate(self.containers):
            cid = f"demo-{'ab'[i]}"
            result = self.plugin("ADD", name, cid, self.config)
            assert result is not None
            results[name] = result
            veth = result["interfaces"][1]["name"]
            print(f"   {cid}: eth0 {result['ips'][0]['address']} (mac {result['interfaces'][2]['mac']}), "
                  f"gateway {result['ips'][0]['gateway']}, host side {veth}")

        a, b = self.containers
        ip_a = results[a]["ips"][0]["address"].split("/")[0]
        ip_b = results[b]["ips"][0]["address"].split("/")[0]
        print("4. Talking over TCP")
        checks = [
            (f"   demo-a -> demo-b ({ip_b})", self.talk(b, ip_b, a)),
            (f"   demo-b -> demo-a ({ip_a})", self.talk(a, ip_a, b)),
            (f"   demo-a -> gateway ({GATEWAY}, on the bridge in the host namespace)", self.talk(self.host, GATEWAY, a)),
        ]
        for label, answer in checks:
            print(f"{label}: {answer}")

        print("5. bridge DEL for both containers")
        for i, name in enumerate(self.containers):
            self.plugin("DEL", name, f"demo-{'ab'[i]}", {**self.config, "prevResult": results[name]})

        leftovers = self.host_veths()
        store = self.data_dir / "demo-net"
        reservations = [p.name for p in store.iterdir() if p.name[0].isdigit()] if store.is_dir() else []
        print("6. What is left")
        print(f"   veths in the host namespace: {leftovers or 'none'}")
        print(f"   container eth0: {[n for n in self.containers if self.in_ns(n, ['ip', 'link', 'show', 'eth0']).returncode == 0] or 'none'}")
        print(f"   IPAM reservations: {reservations or 'none'}")
        print("   (the bridge cni-demo0 stays, as with the reference plugin; it goes with the host namespace)")
        ok = all(not answer.startswith("FAILED") for _, answer in checks) and not leftovers and not reservations
        print("Demo " + ("succeeded." if ok else "FAILED."))
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        args = args[1:]
    parser = argparse.ArgumentParser(prog="pycni demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--masquerade", action="store_true", help="also set up ipMasq for the containers")
    ns = parser.parse_args(args)
    if os.geteuid() != 0:
        print("pycni demo needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    demo = Demo(ns.masquerade)
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        demo.cleanup()
        print(f"Removed the demo namespaces ({', '.join(demo.made) or 'none'}).")


if __name__ == "__main__":
    sys.exit(main())
