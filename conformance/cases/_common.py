"""What every case uses: exec a plugin like a runtime, good configs, and graders.

`Target` is shared by all cases of one run (plugin dir, latency samples, cached VERSION answers);
`Ctx` is made fresh for each case and owns that case's namespaces and temp dir, which `close()`
removes. Graders turn a plugin's answer into pass/fail/warn with a message that names what the
plugin printed and what the spec wanted.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .. import netns as nsmod
from ..harness import CaseFailed, CaseSkipped, Latency

ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}
REF_ONLY_CODES = {8, 999}
SHORT = {"host-local": "hl", "bridge": "br"}
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UNSET = object()
BUILTIN_CHAINS = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def family(version: str) -> int:
    if version in ("", "0.1.0", "0.2.0"):
        return 0
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        return 1
    return 2


def vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if version else (0, 1, 0)


@dataclass
class Run:
    """One plugin invocation as the runtime saw it."""

    command: str
    rc: int
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def brief(self) -> str:
        out = self.text.strip().replace("\n", " ")
        err = self.stderr.decode(errors="replace").strip().replace("\n", " ")
        s = f"exit {self.rc}" + (" (timed out)" if self.timed_out else "")
        s += f", stdout {out[:300]!r}" if out else ", empty stdout"
        if err and self.rc != 0:
            s += f", stderr {err[:160]!r}"
        return s

    def document(self) -> Any:
        """The single JSON value on stdout; ValueError when there is none, or more than one."""
        text = self.stdout.decode("utf-8").strip()
        if not text:
            raise ValueError("stdout is empty")
        value, end = json.JSONDecoder().raw_decode(text)
        if text[end:].strip():
            raise ValueError(f"trailing data after the JSON document: {text[end:end + 60]!r}")
        return value


@dataclass
class Target:
    """Everything shared by the cases of one run."""

    plugin_dir: str
    latency: Latency = field(default_factory=Latency)
    timeout: float = 30.0
    parallel: int = 16
    fault_rounds: int = 10
    seed: int = 0  # fault-injection points are reproducible for a given seed
    pass_env: dict[str, str] = field(default_factory=dict)  # extra variables every plugin call gets
    _versions: dict[str, list[str] | None] = field(default_factory=dict)
    schema_mode: str = ""

    def binary(self, plugin: str) -> str:
        return os.path.join(self.plugin_dir, plugin)

    def has(self, plugin: str) -> bool:
        return os.access(self.binary(plugin), os.X_OK)


class Ctx:
    """Per-case state: a private host netns, container netns, a temp dir; all removed by close()."""

    def __init__(self, target: Target, plugin: str = "") -> None:
        self.target = target
        self.plugin = plugin
        self.warnings: list[str] = []
        self._host: nsmod.NetNS | None = None
        self._containers: list[nsmod.NetNS] = []
        self._default: nsmod.NetNS | None = None
        self._tmp: Path | None = None
        self.token = secrets.token_hex(3)
        self.net = f"net{self.token}"
        self.bridge = f"cnb{self.token}"
        self.procs: list[subprocess.Popen[bytes]] = []

    # ---- outcome helpers ----
    def fail(self, msg: str) -> None:
        raise CaseFailed(msg)

    def skip(self, msg: str) -> None:
        raise CaseSkipped(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def require(self, cond: Any, msg: str) -> None:
        if not cond:
            raise CaseFailed(msg)

    # ---- resources ----
    @property
    def host(self) -> nsmod.NetNS:
        if self._host is None:
            self._host = nsmod.create("h")
        return self._host

    def container(self) -> nsmod.NetNS:
        ns = nsmod.create("c")
        self._containers.append(ns)
        return ns

    @property
    def netns(self) -> nsmod.NetNS:
        """The default container namespace of the case."""
        if self._default is None:
            self._default = self.container()
        return self._default

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="cni-conformance-"))
        return self._tmp

    @property
    def data_dir(self) -> Path:
        return self.tmp / "ipam"

    @property
    def net_dir(self) -> Path:
        return self.data_dir / self.net

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in self._containers:
            nsmod.delete(ns)
        if self._host is not None:
            nsmod.delete(self._host)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- plugin facts ----
    def versions(self, plugin: str | None = None) -> list[str]:
        """supportedVersions from VERSION (cached per run); fails the case if VERSION is broken."""
        plugin = plugin or self.plugin
        cache = self.target._versions
        if plugin not in cache:
            r = self.exec(plugin, "VERSION", stdin=b'{"cniVersion":"1.1.0"}')
            try:
                doc = r.document()
                vers = [v for v in doc["supportedVersions"] if isinstance(v, str)]
            except (ValueError, KeyError, TypeError):
                vers = None
            cache[plugin] = vers
        vers = cache[plugin]
        if not vers:
            self.fail(f"{plugin} VERSION gave no usable supportedVersions")
        return list(vers or [])

    def version(self, plugin: str | None = None) -> str:
        """The highest version both the plugin and this harness know."""
        known = [v for v in self.versions(plugin) if v in ALL_VERSIONS]
        if not known:
            self.fail("plugin supports none of the CNI versions 0.1.0..1.1.0")
        return max(known, key=vkey)

    def need_version(self, version: str, why: str, plugin: str | None = None) -> None:
        """Fail (not skip) when the plugin lacks a version the spec needs for this verb."""
        if version not in self.versions(plugin):
            self.fail(f"{plugin or self.plugin} does not advertise cniVersion {version}, so {why} "
                      f"cannot be used at all (supportedVersions {self.versions(plugin)})")

    # ---- configs ----
    def ipam(self, **over: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"type": "host-local", "subnet": "10.88.0.0/24",
                                "dataDir": str(self.data_dir)}
        conf.update(over)
        return {k: v for k, v in conf.items() if v is not UNSET}

    def conf(self, plugin: str | None = None, version: str | None = None,
             ipam: dict[str, Any] | None = None, **over: Any) -> dict[str, Any]:
        """A minimal config the plugin's ADD should accept; keyword args add/replace keys."""
        plugin = plugin or self.plugin
        conf: dict[str, Any] = {"cniVersion": version or self.version(plugin), "name": self.net}
        if plugin == "bridge":
            conf.update({"type": "bridge", "bridge": self.bridge, "isGateway": True,
                         "ipam": ipam if ipam is not None else self.ipam()})
        else:
            conf.update({"type": plugin, "ipam": ipam if ipam is not None else self.ipam()})
        conf.update(over)
        return {k: v for k, v in conf.items() if v is not UNSET}

    # ---- exec ----
    def env(self, command: str, cid: Any = UNSET, netns: Any = UNSET, ifname: Any = UNSET,
            args: str = "", path: Any = UNSET, unset: Iterable[str] = (),
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
        attach = command in ("ADD", "DEL", "CHECK")
        env = {**self.target.pass_env, "PATH": BASE_PATH, "CNI_COMMAND": command,
               "CNI_CONTAINERID": ("ctr1" if attach else "") if cid is UNSET else cid,
               "CNI_NETNS": ((self.netns.path if attach else "") if netns is UNSET
                             else (netns.path if isinstance(netns, nsmod.NetNS) else netns)),
               "CNI_IFNAME": ("eth0" if attach else "") if ifname is UNSET else ifname,
               "CNI_ARGS": args,
               "CNI_PATH": self.target.plugin_dir if path is UNSET else path}
        for k in unset:
            env.pop(k, None)
        if extra:
            env.update(extra)
        return env

    def exec(self, plugin: str | None, command: str, conf: Any = None, stdin: bytes | None = None,
             env: Mapping[str, str] | None = None, timeout: float | None = None,
             **env_kw: Any) -> Run:
        """Run the plugin in the case's host netns with a clean environment; record latency."""
        plugin = plugin or self.plugin
        if env is None:
            env = self.env(command, **env_kw)
        if stdin is None:
            stdin = json.dumps(conf).encode() if conf is not None else b""
        p = self.spawn(plugin, env)
        t0 = time.monotonic()
        timed_out = False
        try:
            out, err = p.communicate(stdin, timeout=timeout or self.target.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            timed_out = True
        secs = time.monotonic() - t0
        run = Run(env.get("CNI_COMMAND", ""), p.returncode, out, err, secs, timed_out)
        if run.rc == 0 and run.command in ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"):
            self.target.latency.record(f"{plugin} {run.command}", secs)
        return run

    def spawn(self, plugin: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start the plugin (own process group, so a fault case can SIGKILL it and its delegate)."""
        env = {**self.target.pass_env, **env}
        argv = self.host.wrap([self.target.binary(plugin)])
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(env), start_new_session=True)
        self.procs.append(p)
        return p

    # ---- common sequences ----
    def add(self, conf: dict[str, Any], what: str = "ADD", **kw: Any) -> dict[str, Any]:
        """ADD that must succeed; returns the parsed result."""
        r = self.exec(None, "ADD", conf, **kw)
        return ok_result(self, r, conf.get("cniVersion", ""), what)

    def delete(self, conf: dict[str, Any], what: str = "DEL", **kw: Any) -> None:
        ok_silent(self, self.exec(None, "DEL", conf, **kw), what)


# ---------------------------------------------------------------- graders

def parse_error(run: Run) -> tuple[dict[str, Any] | None, str]:
    """(error object, problem) for a failed run; problem is '' when the shape is right."""
    if run.rc == 0:
        return None, "exited 0"
    try:
        doc = run.document()
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"no error JSON on stdout ({e})"
    if not isinstance(doc, dict):
        return None, f"stdout is JSON but not an object: {doc!r:.80}"
    code = doc.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or code < 0:
        return doc, f"error 'code' must be a non-negative integer, got {code!r}"
    if not isinstance(doc.get("msg"), str):
        return doc, f"error 'msg' must be a string, got {doc.get('msg')!r}"
    if "details" in doc and not isinstance(doc["details"], str):
        return doc, f"error 'details' must be a string, got {doc['details']!r}"
    if "cniVersion" in doc and not isinstance(doc["cniVersion"], str):
        return doc, f"error 'cniVersion' must be a string, got {doc['cniVersion']!r}"
    return doc, ""


def expect_error(ctx: Ctx, run: Run, codes: Iterable[int] | None, what: str,
                 warn_codes: Iterable[int] = (), mention: Sequence[str] = ()) -> dict[str, Any]:
    """ERR(codes): non-zero exit and one error object. codes=None accepts any code."""
    if run.timed_out:
        ctx.fail(f"{what}: plugin did not exit within {ctx.target.timeout:.0f}s")
    if run.rc == 0:
        ctx.fail(f"{what}: expected an error, but the plugin succeeded ({run.brief()})")
    doc, problem = parse_error(run)
    if problem:
        ctx.fail(f"{what}: error not reported as CNI error JSON on stdout: {problem} ({run.brief()})")
    assert doc is not None
    code = doc["code"]
    codes = set(codes) if codes is not None else None
    if codes is not None and code not in codes:
        if code in set(warn_codes):
            ctx.warn(f"{what}: code {code} accepted as reference behaviour; spec wants "
                     f"{sorted(codes)} (msg {doc['msg']!r})")
        else:
            ctx.fail(f"{what}: expected error code {sorted(codes)}, got {code} "
                     f"(msg {doc['msg']!r})")
    elif code in REF_ONLY_CODES and (codes is None or code not in codes):
        ctx.warn(f"{what}: code {code} is not a spec error code (reference-only); "
                 f"msg {doc['msg']!r}")
    text = (doc.get("msg", "") + " " + doc.get("details", "")).lower()
    for word in mention:
        if word.lower() not in text:
            ctx.fail(f"{what}: error message should name {word!r}, got msg {doc['msg']!r} "
                     f"details {doc.get('details', '')!r}")
    return doc


def ok_silent(ctx: Ctx, run: Run, what: str) -> None:
    """OK-silent: exit 0 and nothing but whitespace on stdout."""
    if run.timed_out:
        ctx.fail(f"{what}: plugin did not exit within {ctx.target.timeout:.0f}s")
    if run.rc != 0:
        ctx.fail(f"{what}: expected success, got {run.brief()}")
    if run.stdout.strip():
        ctx.fail(f"{what}: succeeded but printed {run.text.strip()[:200]!r}; stdout must stay "
                 f"empty for this verb")


def ok_result(ctx: Ctx, run: Run, version: str, what: str) -> dict[str, Any]:
    """OK-result(version): exit 0, exactly one JSON object that is a valid result of `version`."""
    if run.timed_out:
        ctx.fail(f"{what}: plugin did not exit within {ctx.target.timeout:.0f}s")
    if run.rc != 0:
        ctx.fail(f"{what}: expected a result, got {run.brief()}")
    try:
        doc = run.document()
    except (ValueError, UnicodeDecodeError) as e:
        ctx.fail(f"{what}: stdout is not exactly one JSON document ({e})")
    if not isinstance(doc, dict):
        ctx.fail(f"{what}: result must be a JSON object, got {doc!r:.80}")
    problems = result_problems(doc, version, ctx.target)
    if problems:
        ctx.fail(f"{what}: result is not a valid {version or '0.1.0'} result: "
                 + "; ".join(problems[:4]))
    return doc


# ---------------------------------------------------------------- result validation

def _cidr(v: Any) -> Any:
    if not isinstance(v, str) or "/" not in v:
        raise ValueError(f"{v!r} is not a CIDR address")
    return ip_interface(v)


def _ip(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError(f"{v!r} is not an IP address")
    return ip_address(v)


def _routes(routes: Any, where: str, out: list[str]) -> None:
    if not isinstance(routes, list):
        out.append(f"{where} must be a list")
        return
    for i, r in enumerate(routes):
        if not isinstance(r, dict):
            out.append(f"{where}[{i}] must be an object")
            continue
        try:
            dst = ip_network(r.get("dst"), strict=False) if isinstance(r.get("dst"), str) else None
            if dst is None:
                raise ValueError(f"dst {r.get('dst')!r} is not a CIDR")
            if "gw" in r and r["gw"] is not None and _ip(r["gw"]).version != dst.version:
                out.append(f"{where}[{i}].gw {r['gw']} is not the family of dst {r['dst']}")
        except ValueError as e:
            out.append(f"{where}[{i}]: {e}")
        for k in ("mtu", "advmss", "priority", "table", "scope"):
            if k in r and (not isinstance(r[k], int) or r[k] < 0):
                out.append(f"{where}[{i}].{k} must be an unsigned integer, got {r[k]!r}")


def _dns(dns: Any, out: list[str]) -> None:
    if not isinstance(dns, dict):
        out.append("dns must be an object")
        return
    for k in ("nameservers", "search", "options"):
        if k in dns and dns[k] is not None and (not isinstance(dns[k], list) or
                                                not all(isinstance(x, str) for x in dns[k])):
            out.append(f"dns.{k} must be a list of strings, got {dns[k]!r}")
    if "domain" in dns and not isinstance(dns["domain"], str):
        out.append(f"dns.domain must be a string, got {dns['domain']!r}")


def structural_problems(doc: dict[str, Any], version: str) -> list[str]:
    """The result rules of spec §4 for one version (harness's own check, independent of schemas)."""
    out: list[str] = []
    got = doc.get("cniVersion")
    if version in ("", "0.1.0") and got in (None, "", "0.1.0"):
        pass
    elif got != version:
        out.append(f"cniVersion is {got!r}, must equal the config's {version!r}")
    fam = family(version)
    if fam == 0:
        for bad in ("interfaces", "ips", "routes"):
            if bad in doc:
                out.append(f"key {bad!r} does not exist in {version} results (use ip4/ip6)")
        for key, fam_v in (("ip4", 4), ("ip6", 6)):
            if key not in doc:
                continue
            block = doc[key]
            if not isinstance(block, dict):
                out.append(f"{key} must be an object")
                continue
            try:
                if _cidr(block.get("ip")).version != fam_v:
                    out.append(f"{key}.ip {block.get('ip')} is not IPv{fam_v}")
                if block.get("gateway") and _ip(block["gateway"]).version != fam_v:
                    out.append(f"{key}.gateway {block['gateway']} is not IPv{fam_v}")
            except ValueError as e:
                out.append(f"{key}: {e}")
            if "routes" in block:
                _routes(block["routes"], f"{key}.routes", out)
        if "dns" in doc:
            _dns(doc["dns"], out)
        return out
    for bad in ("ip4", "ip6", "ip"):
        if bad in doc:
            out.append(f"key {bad!r} does not exist in {version} results")
    ifaces = doc.get("interfaces", [])
    if not isinstance(ifaces, list):
        out.append("interfaces must be a list")
        ifaces = []
    for i, itf in enumerate(ifaces):
        if not isinstance(itf, dict) or not isinstance(itf.get("name"), str) or not itf["name"]:
            out.append(f"interfaces[{i}] needs a non-empty string name")
            continue
        for k in ("mac", "sandbox", "socketPath", "pciID"):
            if k in itf and not isinstance(itf[k], str):
                out.append(f"interfaces[{i}].{k} must be a string")
        if "mtu" in itf and (not isinstance(itf["mtu"], int) or itf["mtu"] < 0):
            out.append(f"interfaces[{i}].mtu must be an unsigned integer")
    ips = doc.get("ips", [])
    if not isinstance(ips, list):
        out.append("ips must be a list")
        ips = []
    for i, ipc in enumerate(ips):
        if not isinstance(ipc, dict):
            out.append(f"ips[{i}] must be an object")
            continue
        try:
            addr = _cidr(ipc.get("address"))
            if ipc.get("gateway") is not None and _ip(ipc["gateway"]).version != addr.version:
                out.append(f"ips[{i}].gateway {ipc['gateway']} is not the family of {ipc['address']}")
        except ValueError as e:
            out.append(f"ips[{i}]: {e}")
            addr = None
        if fam == 1:
            if ipc.get("version") not in ("4", "6"):
                out.append(f"ips[{i}].version must be \"4\" or \"6\" in {version}, "
                           f"got {ipc.get('version')!r}")
            elif addr is not None and ipc["version"] != str(addr.version):
                out.append(f"ips[{i}].version {ipc['version']} contradicts {ipc['address']}")
        elif "version" in ipc:
            out.append(f"ips[{i}].version was removed in 1.0.0 and must not appear")
        if "interface" in ipc:
            idx = ipc["interface"]
            if not isinstance(idx, int) or isinstance(idx, bool):
                out.append(f"ips[{i}].interface must be an integer index")
            elif not 0 <= idx < len(ifaces) and idx != -1:
                out.append(f"ips[{i}].interface {idx} is not an index into interfaces "
                           f"(len {len(ifaces)})")
    if "routes" in doc:
        _routes(doc["routes"], "routes", out)
    if "dns" in doc:
        _dns(doc["dns"], out)
    return out


def schema_problems(doc: dict[str, Any], version: str, target: Target | None) -> list[str]:
    """The project's JSON Schemas (shared.schema), when they exist; [] when they don't."""
    try:
        from shared import schema
    except ImportError:
        return []
    v = version or "0.1.0"
    fn = getattr(schema, "validate_result", None)
    try:
        if fn is not None:
            fn(doc, v)
            mode = "shared.schema.validate_result"
        else:
            problems = schema.schema_errors(doc, f"result-{v}")
            if target is not None:
                target.schema_mode = f"shared/schemas/result-{{version}}.json"
            return [f"schema result-{v}: {p}" for p in problems]
    except FileNotFoundError:
        if target is not None and not target.schema_mode:
            target.schema_mode = "structural checks only (no result schemas found)"
        return []
    except Exception as e:  # CNIError from validate_result, or a broken schema
        msg = getattr(e, "msg", str(e))
        details = getattr(e, "details", "")
        return [f"schema result-{v}: {msg}{': ' + details if details else ''}"]
    if target is not None:
        target.schema_mode = mode
    return []


def result_problems(doc: dict[str, Any], version: str, target: Target | None = None) -> list[str]:
    return structural_problems(doc, version) + schema_problems(doc, version, target)


def result_ips(doc: dict[str, Any]) -> list[str]:
    """Every address (CIDR) in a result of any version."""
    if "ips" in doc:
        return [i["address"] for i in doc["ips"]]
    return [doc[k]["ip"] for k in ("ip4", "ip6") if isinstance(doc.get(k), dict)]


def reservations(ctx: Ctx, net_dir: Path | None = None) -> dict[str, str]:
    """host-local's reservation files: address -> content (lock/last_reserved_ip.* excluded)."""
    d = net_dir or ctx.net_dir
    if not d.is_dir():
        return {}
    out = {}
    for f in d.iterdir():
        if f.name == "lock" or f.name.startswith("last_reserved_ip") or f.name.startswith("."):
            continue
        try:
            ip_address(f.name.replace("_", ":"))
        except ValueError:
            continue
        try:
            out[f.name] = f.read_bytes().decode(errors="replace")
        except OSError:
            out[f.name] = ""
    return out


def firewall_rules(ctx: Ctx) -> set[str]:
    """Rule and chain lines of iptables/ip6tables/nft in the host netns, counters stripped."""
    rules = set()
    for line in nsmod.firewall_text(ctx.host).splitlines():
        line = line.strip()
        if not line or line in ("COMMIT", "}") or line.startswith("*"):
            continue
        if line.startswith(":"):
            line = line.split()[0]
            if line[1:] in BUILTIN_CHAINS:
                continue
        if " # handle " in line:
            line = line.split(" # handle ")[0]
        rules.add(line)
    return rules


def host_links(ctx: Ctx) -> dict[str, dict[str, Any]]:
    return nsmod.links(ctx.host)


def snapshot(ctx: Ctx) -> dict[str, Any]:
    """What a DEL must restore: host links, firewall rules, reservation files."""
    return {"links": set(host_links(ctx)), "rules": firewall_rules(ctx),
            "files": set(reservations(ctx))}


def leaks(before: dict[str, Any], after: dict[str, Any], allow_links: Iterable[str] = ()) -> list[str]:
    out = []
    extra_links = after["links"] - before["links"] - set(allow_links)
    if extra_links:
        out.append(f"links left in the host netns: {sorted(extra_links)}")
    extra_rules = after["rules"] - before["rules"]
    # the bridge plugin may leave empty per-network scaffolding (tables/base chains): only
    # rules that name a container address or a per-container chain count as a leak
    extra_rules = {r for r in extra_rules if not r.endswith("{") and r.split()[0] not in
                   ("table", "chain", "type")}
    if extra_rules:
        out.append(f"firewall rules left: {sorted(extra_rules)[:6]}")
    extra_files = after["files"] - before["files"]
    if extra_files:
        out.append(f"reservation files left: {sorted(extra_files)}")
    return out


def leaks_after(ctx: Ctx, before: dict[str, Any], settle: float = 3.0) -> list[str]:
    """leaks() once the kernel has settled: a deleted netns takes its veth peers with it only when
    the namespace is actually freed (asynchronously), so transient links are given a moment."""
    deadline = time.monotonic() + settle
    while True:
        problems = leaks(before, snapshot(ctx))
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.1)
