"""A tiny in-process plugin for the core's unit tests: handlers record what they were called with."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from shared import skel
from shared.errors import CNIError
from shared.request import Request
from shared.types import DNS, Interface, IPConfig, Result, Route, parse_cidr, parse_ip, parse_network

GOOD_CONF: dict[str, Any] = {"cniVersion": "1.1.0", "name": "testnet", "type": "fake"}
NETNS = "/var/run/netns/does-not-exist-pycni"


def sample_result() -> Result:
    """Dual-stack, with interfaces, route extras and DNS: exercises every conversion rule."""
    return Result(
        interfaces=[Interface("br0", mac="0a:58:0a:00:00:01"),
                    Interface("veth1", mac="0a:58:0a:00:00:02"),
                    Interface("eth0", mac="0a:58:0a:00:00:03", mtu=1400, sandbox=NETNS)],
        ips=[IPConfig(parse_cidr("10.1.0.5/16"), parse_ip("10.1.0.1"), 2),
             IPConfig(parse_cidr("10.2.0.5/24"), None, 2),
             IPConfig(parse_cidr("fd00::5/64"), parse_ip("fd00::1"), 2)],
        routes=[Route(parse_network("0.0.0.0/0"), parse_ip("10.1.0.1"), mtu=1400, table=0),
                Route(parse_network("192.168.0.0/16")),
                Route(parse_network("::/0"), parse_ip("fd00::1"), priority=5, scope=0)],
        dns=DNS(nameservers=["10.1.0.1"], domain="example.org", search=["a.example.org"], options=["ndots:2"]),
    )


@dataclass
class Recorder:
    calls: list[Request] = field(default_factory=list)
    result: Result = field(default_factory=sample_result)
    raise_: Exception | None = None

    def handler(self, req: Request) -> Result | None:
        self.calls.append(req)
        if self.raise_ is not None:
            raise self.raise_
        return self.result if req.command == "ADD" else None


def make_plugin(rec: Recorder, verbs: tuple[str, ...] = ("ADD", "DEL", "CHECK", "GC", "STATUS"),
                about: str = "fake plugin v0", supported: tuple[str, ...] | None = None) -> skel.Plugin:
    kwargs: dict[str, Any] = {}
    if supported is not None:
        kwargs["supported"] = supported
    return skel.Plugin("fake", {v: rec.handler for v in verbs}, about=about, **kwargs)


def env_for(command: str, **overrides: str | None) -> dict[str, str]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_NETNS": NETNS,
           "CNI_IFNAME": "eth0", "CNI_ARGS": "", "CNI_PATH": "/nonexistent/bin"}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(plugin: skel.Plugin, env: Mapping[str, str], config: Any = GOOD_CONF,
        stdin: bytes | None = None) -> skel.Outcome:
    data = stdin if stdin is not None else json.dumps(config).encode()
    return skel.run(plugin, env, lambda: data)


def error_of(outcome: skel.Outcome) -> dict[str, Any]:
    """The error object; asserts the process contract (exit 1, exactly one JSON object)."""
    assert outcome.exit_code == 1, outcome
    doc = json.loads(outcome.stdout)
    assert isinstance(doc, dict) and isinstance(doc["code"], int) and isinstance(doc["msg"], str), doc
    return doc


def raiser(err: Exception) -> Callable[[], bytes]:
    def read() -> bytes:
        raise err
    return read


__all__ = ["CNIError", "GOOD_CONF", "NETNS", "Recorder", "env_for", "error_of", "make_plugin", "raiser",
           "run", "sample_result"]
