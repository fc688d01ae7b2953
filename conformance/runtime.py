"""A libcni-like runtime: run a network's plugin chain for one attachment, as a container runtime would.

What it emulates (spec notes §8, R8.1–R8.12): plugin lookup before anything runs; the request
config built per plugin (`name`, `cniVersion`, `prevResult`, `runtimeConfig` from enabled and
provided capabilities); ADD in order passing each result on as returned; a cniCacheV1 result cache;
CHECK (>= 0.4.0, `disableCheck`); DEL in reverse order with the cached result; GC (stale cached
attachments DEL'd, then GC with the valid attachments, `disableGC`); STATUS (>= 1.1.0). Every
operation records its invocations and wall time in `Runtime.last` so a harness can report latency.

    rt = Runtime(["/opt/cni/bin"], cache_dir="/tmp/cache")
    net = load_network("/etc/cni/net.d", "mynet")
    outcome = rt.add(net, Attachment("ctr1", "/run/netns/ctr1"))
    print(outcome.result.ips)
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from shared.errors import CNIError, ErrorCode
from shared.request import validate_container_id, validate_ifname, validate_network_name
from shared.types import Result
from shared.version import parse_version

from . import execplugin
from .cache import DEFAULT_CACHE_DIR, CachedAttachment, ResultCache
from .execplugin import ExecError, Invocation, Trace, cni_env
from .netconf import NetworkConfigList, PluginConf, go_marshal, load_file, load_network

__all__ = ["Attachment", "ChainError", "MultiError", "Outcome", "Runtime", "Invocation", "NetworkConfigList",
           "load_file", "load_network", "DEFAULT_CACHE_DIR"]

VALID_KEY = "cni.dev/valid-attachments"
LEGACY_KEY = "cni.dev/attachments"  # the name in the spec-v1.1.0 tag; libcni sends both


@dataclass(frozen=True)
class Attachment:
    """libcni's RuntimeConf: which container, where, and the runtime's per-call arguments."""

    container_id: str
    netns: str = ""
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()  # CNI_ARGS pairs, joined with ';' unescaped
    capability_args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cni_args(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.args)


@dataclass
class Outcome:
    """What one runtime operation did. `result`/`raw` only for ADD (raw: as the last plugin printed it)."""

    verb: str
    network: str
    version: str
    result: Result | None = None
    raw: dict[str, Any] | None = None
    calls: list[Invocation] = field(default_factory=list)
    wall_ms: float = 0.0
    skipped: str = ""  # why nothing was executed (disableCheck, old version, ...)


class ChainError(CNIError):
    """A plugin in the chain failed. Code, msg and details are the plugin's own (so they can be relayed
    unchanged); str() adds libcni's context: `plugin type="x" name="y" failed (add): ...`."""

    def __init__(self, code: int, msg: str, details: str = "", context: str = "",
                 invocation: Invocation | None = None) -> None:
        super().__init__(code, msg, details)
        self.context = context
        self.invocation = invocation

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.msg, self.details, self.context, self.invocation))

    def __str__(self) -> str:
        inner = f"{self.msg}; {self.details}" if self.details else self.msg
        return f"{self.context}: {inner}" if self.context else inner


def _wrap(err: CNIError, context: str) -> ChainError:
    inv = getattr(err, "invocation", None)
    return ChainError(err.code, err.msg, err.details, context, inv)


def _at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


class Runtime:
    """One runtime instance: a plugin search path, a cache directory, a timeout and a base environment."""

    def __init__(self, plugin_dirs: Sequence[str], cache_dir: str = DEFAULT_CACHE_DIR,
                 timeout: float = execplugin.DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None) -> None:
        self.plugin_dirs = tuple(str(d) for d in plugin_dirs)
        self.cache = ResultCache(str(cache_dir))
        self.timeout = timeout
        self.env = dict(os.environ if env is None else env)
        self._local = threading.local()

    @property
    def last(self) -> Outcome:
        """The most recent operation of the calling thread, finished or failed (calls, wall time)."""
        out = getattr(self._local, "out", None)
        return out if out is not None else Outcome("", "", "")

    @last.setter
    def last(self, out: Outcome) -> None:
        self._local.out = out

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _operation(self, verb: str, net: NetworkConfigList) -> Iterator[Outcome]:
        """Time one operation; a CNIError leaving it carries the partial outcome as `.outcome`."""
        out = self.last = Outcome(verb, net.name, net.cni_version)
        started = time.perf_counter()
        try:
            yield out
        except CNIError as e:
            e.outcome = out  # type: ignore[attr-defined]
            raise
        finally:
            out.wall_ms = (time.perf_counter() - started) * 1000

    def _exec(self, out: Outcome, plugin_type: str, binary: str, cni: dict[str, str], stdin: bytes) -> bytes:
        try:
            inv = execplugin.run(plugin_type, binary, cni, stdin, self.env, self.timeout)
        except ExecError as e:
            if e.invocation is not None:
                out.calls.append(e.invocation)
            raise
        out.calls.append(inv)
        return execplugin.check(inv, self.timeout)

    def find(self, plugin_type: str) -> str:
        return execplugin.find_in_path(plugin_type, self.plugin_dirs)

    def _binaries(self, net: NetworkConfigList) -> list[str]:
        """R8.1: every plugin must be found before any is executed."""
        return [self.find(p.type) for p in net.plugins]

    @staticmethod
    def request_config(net: NetworkConfigList, plugin: PluginConf, prev: Mapping[str, Any] | None,
                       att: Attachment | None) -> dict[str, Any]:
        """libcni's buildOneConfig: inject name, cniVersion, prevResult and runtimeConfig; keep the rest."""
        conf = dict(plugin.raw)
        conf["name"] = net.name
        conf["cniVersion"] = net.cni_version
        if prev is not None:
            conf["prevResult"] = dict(prev)
        if att is not None:
            rc = {cap: att.capability_args[cap] for cap in sorted(plugin.capabilities)
                  if cap in att.capability_args}
            if rc:
                conf["runtimeConfig"] = rc
        return conf

    def _cni(self, command: str, att: Attachment | None) -> dict[str, str]:
        if att is None:
            return cni_env(command, path=self.plugin_dirs)
        return cni_env(command, att.container_id, att.netns, att.ifname, att.cni_args, self.plugin_dirs)

    # -- VERSION ----------------------------------------------------------------------------
    def version_info(self, plugin_type: str, out: Outcome | None = None) -> tuple[str, ...]:
        """libcni's GetVersionInfo probe (R5.7): dummy NETNS/IFNAME/PATH, stdin {"cniVersion":"1.1.0"}."""
        binary = self.find(plugin_type)
        cni = execplugin.cni_env("VERSION", netns="dummy", ifname="dummy", path=("dummy",))
        if out is None:
            out = self.last = Outcome("VERSION", "", "")
        try:
            stdout = self._exec(out, plugin_type, binary, cni, b'{"cniVersion":"1.1.0"}')
        except CNIError as e:
            if str(e) == "unknown CNI_COMMAND: VERSION":
                return ("0.1.0",)
            raise
        return execplugin.decode_version_info(stdout)

    def validate(self, net: NetworkConfigList) -> frozenset[str]:
        """ValidateNetworkList: each plugin found and supporting the list's version; returns the capabilities."""
        with self._operation("VALIDATE", net) as out:
            expected = net.cni_version or "0.1.0"
            errors: list[CNIError] = []
            for plugin in net.plugins:
                try:
                    supported = self.version_info(plugin.type, out)
                    if expected not in supported:
                        errors.append(CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                                               f'plugin {plugin.type} does not support config version "{expected}"',
                                               f"it supports {list(supported)}"))
                except CNIError as e:
                    errors.append(e)
            if errors:
                raise _joined(errors)
        return net.capabilities

    # -- ADD --------------------------------------------------------------------------------
    def add(self, net: NetworkConfigList, att: Attachment) -> Outcome:
        with self._operation("ADD", net) as out:
            validate_container_id(att.container_id)
            validate_network_name(net.name)
            validate_ifname(att.ifname)
            binaries = self._binaries(net)
            prev: dict[str, Any] | None = None
            result: Result | None = None
            for plugin, binary in zip(net.plugins, binaries):
                conf = self.request_config(net, plugin, prev, att)
                try:
                    stdout = self._exec(out, plugin.type, binary, self._cni("ADD", att), go_marshal(conf))
                    prev, result = _read_result(stdout, net.cni_version)
                except CNIError as e:
                    raise _wrap(e, f"plugin {plugin.description} failed (add)") from None
            assert prev is not None and result is not None
            self.cache.save(CachedAttachment(container_id=att.container_id, ifname=att.ifname, network=net.name,
                                             netns=att.netns, cni_args=att.args,
                                             capability_args=dict(att.capability_args), config=net.bytes,
                                             result=prev))
            out.raw, out.result = prev, result
            return out

    # -- CHECK ------------------------------------------------------------------------------
    def check(self, net: NetworkConfigList, att: Attachment) -> Outcome:
        with self._operation("CHECK", net) as out:
            if not _at_least(net.cni_version, "0.4.0"):
                raise CNIError(ErrorCode.INCOMPATIBLE_VERSION,
                               f'configuration version "{net.cni_version}" does not support the CHECK command')
            if net.disable_check:
                out.skipped = "disableCheck is true"
                return out
            try:
                cached = self._cached_result(net, att)
            except CNIError as e:
                raise CNIError(e.code, f'failed to get network "{net.name}" cached result', str(e)) from None
            binaries = self._binaries(net)
            for plugin, binary in zip(net.plugins, binaries):
                conf = self.request_config(net, plugin, cached, att)
                try:
                    self._exec(out, plugin.type, binary, self._cni("CHECK", att), go_marshal(conf))
                except CNIError as e:
                    raise _wrap(e, f"plugin {plugin.description} failed (check)") from None
            return out

    def _cached_result(self, net: NetworkConfigList, att: Attachment) -> dict[str, Any] | None:
        """The cached final ADD result converted to the list's version; None when not cached."""
        raw = self.cache.load_result(net.name, att.container_id, att.ifname)
        if raw is None:
            return None
        try:
            return Result.from_json(raw).to_json(net.cni_version)
        except CNIError as e:
            raise CNIError(e.code, f'failed to convert cached result to config version "{net.cni_version}"',
                           str(e)) from None

    # -- DEL --------------------------------------------------------------------------------
    def delete(self, net: NetworkConfigList, att: Attachment) -> Outcome:
        with self._operation("DEL", net) as out:
            self._delete(out, net, att)
            return out

    def _delete(self, out: Outcome, net: NetworkConfigList, att: Attachment) -> None:
        cached: dict[str, Any] | None = None
        if _at_least(net.cni_version, "0.4.0"):
            try:
                cached = self._cached_result(net, att)
            except CNIError:
                self.cache.delete(net.name, att.container_id, att.ifname)  # corrupt: drop it, DEL anyway
        binaries = self._binaries(net)
        for plugin, binary in reversed(list(zip(net.plugins, binaries))):
            conf = self.request_config(net, plugin, cached, att)
            try:
                self._exec(out, plugin.type, binary, self._cni("DEL", att), go_marshal(conf))
            except CNIError as e:
                raise _wrap(e, f"plugin {plugin.description} failed (delete)") from None
        self.cache.delete(net.name, att.container_id, att.ifname)

    # -- GC ---------------------------------------------------------------------------------
    def gc(self, net: NetworkConfigList, valid: Iterable[tuple[str, str]] | None = None) -> Outcome:
        """DEL every cached attachment of `net` not in `valid`, then GC each plugin (>= 1.1.0).

        `valid=None` is libcni's "no GC args": the cni.dev keys are left out and every cached
        attachment of the network counts as stale.
        """
        with self._operation("GC", net) as out:
            if net.disable_gc:
                out.skipped = "disableGC is true"
                return out
            keep = set(valid) if valid is not None else set()
            errors: list[CNIError] = []
            for entry in self.cache.attachments():
                if entry.network != net.name or (entry.container_id, entry.ifname) in keep:
                    continue
                stale = Attachment(entry.container_id, entry.netns, entry.ifname, entry.cni_args,
                                   dict(entry.capability_args))
                try:
                    self._delete(out, net, stale)
                except CNIError as e:
                    errors.append(_wrap(e, f"failed to delete stale attachment {entry.container_id} "
                                           f"{entry.ifname}: {getattr(e, 'context', '')}".rstrip(": ")))
            if _at_least(net.cni_version, "1.1.0"):
                self._gc_plugins(out, net, valid, errors)
            else:
                out.skipped = f"cniVersion {net.cni_version} < 1.1.0: only stale attachments were deleted"
            if errors:
                raise _joined(errors)
            return out

    def _gc_plugins(self, out: Outcome, net: NetworkConfigList, valid: Iterable[tuple[str, str]] | None,
                    errors: list[CNIError]) -> None:
        inject: dict[str, Any] = {}
        if valid is not None:
            items = [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]
            inject = {VALID_KEY: items, LEGACY_KEY: items}
        for plugin in net.plugins:
            conf = {**self.request_config(net, plugin, None, None), **inject}
            try:
                self._exec(out, plugin.type, self.find(plugin.type), self._cni("GC", None), go_marshal(conf))
            except CNIError as e:
                errors.append(_wrap(e, f"failed to GC plugin {plugin.type}"))

    # -- STATUS -----------------------------------------------------------------------------
    def status(self, net: NetworkConfigList) -> Outcome:
        """In order, stopping at the first failure with its code unchanged; nothing runs below 1.1.0."""
        with self._operation("STATUS", net) as out:
            if not _at_least(net.cni_version, "1.1.0"):
                out.skipped = f"cniVersion {net.cni_version} < 1.1.0 has no STATUS"
                return out
            for plugin in net.plugins:
                conf = self.request_config(net, plugin, None, None)
                try:
                    self._exec(out, plugin.type, self.find(plugin.type), self._cni("STATUS", None),
                               go_marshal(conf))
                except CNIError as e:
                    raise _wrap(e, f"plugin {plugin.description} failed (status)") from None
            return out

    # -- cache queries ----------------------------------------------------------------------
    def cached_attachments(self, container_id: str = "") -> list[CachedAttachment]:
        return self.cache.attachments(container_id)


def _read_result(stdout: bytes, conf_version: str) -> tuple[dict[str, Any], Result]:
    """libcni's fixupResultVersion + create.Create: a JSON object, version defaulting to the config's,
    of the same family as the config's version."""
    try:
        obj = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, "failed to unmarshal raw result", str(e)) from None
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise CNIError(ErrorCode.DECODING_FAILURE, "failed to unmarshal raw result",
                       f"expected a JSON object, got {type(obj).__name__}")
    if obj.get("cniVersion") in (None, ""):
        obj["cniVersion"] = conf_version
    return obj, Result.from_json(obj, expected_version=conf_version or "0.1.0")


class MultiError(CNIError):
    """Several failures (GC keeps going); code, msg and details are the first one's, all are in `errors`."""

    def __init__(self, errors: list[CNIError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.msg, first.details)
        self.errors = list(errors)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)


def _joined(errors: list[CNIError]) -> CNIError:
    return errors[0] if len(errors) == 1 else MultiError(errors)
