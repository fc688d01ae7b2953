"""`pycni add|check|del|gc|status`: a cnitool-like front end on the runtime driver.

    pycni add mynet /run/netns/ctr1 --conf-dir ./net.d --plugin-dir ./bin --cache-dir /tmp/cni
    pycni del mynet /run/netns/ctr1 --conf-dir ./net.d --plugin-dir ./bin --cache-dir /tmp/cni
    pycni gc mynet --valid ctr2/eth0
    pycni status mynet

ADD prints the result JSON. Any failure prints the CNI error JSON (the plugin's own code, msg and
details) on stdout and exits 1; the libcni-style context goes to stderr.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any, Sequence

from shared.errors import CNIError, ErrorCode

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_PLUGIN_DIR = "/opt/cni/bin"
VERBS = ("add", "check", "del", "gc", "status")


def default_container_id(netns: str) -> str:
    """cnitool's default: a hash of the netns path, so repeated calls name the same attachment."""
    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def parse_args_text(text: str) -> tuple[tuple[str, str], ...]:
    """`K=V;K2=V2` into pairs, rejecting empty keys or values as cnitool does."""
    if not text:
        return ()
    pairs = []
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"invalid CNI_ARGS pair {item!r}",
                           "expected KEY=VALUE pairs separated by ';', keys and values non-empty")
        pairs.append((key, value))
    return tuple(pairs)


def parse_cap(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"invalid capability argument {text!r}",
                       "expected NAME=JSON, e.g. ips='[\"10.1.0.5/24\"]'")
    try:
        return name, json.loads(value)
    except ValueError as e:
        raise CNIError(ErrorCode.DECODING_FAILURE, f"capability {name}: value is not JSON", str(e)) from None


def parse_valid(text: str) -> tuple[str, str]:
    cid, sep, ifname = text.rpartition("/")
    if not sep or not cid or not ifname:
        raise CNIError(ErrorCode.INVALID_ENVIRONMENT, f"invalid attachment {text!r}", "expected CONTAINERID/IFNAME")
    return cid, ifname


def build_parser(verb: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pycni {verb}", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("network", help="network name (the conflist's `name`)")
    if verb in ("add", "check", "del"):
        p.add_argument("netns", help="network namespace path, e.g. /run/netns/ctr1")
        p.add_argument("--container-id", help="default: derived from a hash of the netns path (like cnitool)")
        p.add_argument("--ifname", default=os.environ.get("CNI_IFNAME") or "eth0", help="default eth0")
        p.add_argument("--args", default=os.environ.get("CNI_ARGS", ""), help="CNI_ARGS, K=V;K2=V2")
        p.add_argument("--cap", action="append", default=[], metavar="NAME=JSON",
                       help="capability argument (repeatable), e.g. --cap 'ips=[\"10.1.0.5/24\"]'")
    if verb == "add":
        p.add_argument("--validate", action="store_true",
                       help="first probe every plugin's VERSION and check it supports the list's version")
    if verb == "gc":
        p.add_argument("--valid", action="append", default=[], metavar="CID/IFNAME",
                       help="an attachment that is still in use (repeatable); all others are stale")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--conf-dir", help=f"directory of .conflist/.conf files (default $NETCONFPATH or {DEFAULT_CONF_DIR})")
    src.add_argument("--conf", help="one .conflist or .conf file")
    p.add_argument("--plugin-dir", action="append", default=[],
                   help=f"plugin directory, repeatable (default $CNI_PATH or {DEFAULT_PLUGIN_DIR})")
    p.add_argument("--cache-dir", default=None, help="result cache directory (default /var/lib/cni)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a plugin is killed (default 60)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each plugin call and its time on stderr")
    return p


def _plugin_dirs(ns: argparse.Namespace) -> list[str]:
    if ns.plugin_dir:
        return list(ns.plugin_dir)
    env = os.environ.get("CNI_PATH", "")
    return [d for d in env.split(os.pathsep) if d] or [DEFAULT_PLUGIN_DIR]


def _report(out: Any, verbose: bool) -> None:
    if not out.verb:
        return
    for inv in out.calls:
        if inv.stderr:
            sys.stderr.buffer.write(inv.stderr)
        if verbose:
            status = "timeout" if inv.timed_out else f"exit {inv.returncode}"
            print(f"pycni: {inv.command} {inv.plugin_type}: {status} in {inv.wall_ms:.1f} ms", file=sys.stderr)
    if verbose:
        skipped = f" (nothing run: {out.skipped})" if out.skipped else ""
        print(f"pycni: {out.verb} {out.network} (cniVersion {out.version}) took {out.wall_ms:.1f} ms{skipped}",
              file=sys.stderr)
    sys.stderr.flush()


def run(verb: str, ns: argparse.Namespace) -> int:
    from .cache import DEFAULT_CACHE_DIR
    from .netconf import load_file, load_network
    from .runtime import Attachment, Runtime

    net = load_file(ns.conf) if ns.conf else load_network(
        ns.conf_dir or os.environ.get("NETCONFPATH") or DEFAULT_CONF_DIR, ns.network)
    if ns.conf and net.name != ns.network:
        raise CNIError(ErrorCode.INVALID_NETWORK_CONFIG, f'{ns.conf} defines network "{net.name}"',
                       f'not "{ns.network}"')
    rt = Runtime(_plugin_dirs(ns), cache_dir=ns.cache_dir or DEFAULT_CACHE_DIR, timeout=ns.timeout)
    validated = None
    try:
        if verb in ("add", "check", "del"):
            netns = os.path.abspath(ns.netns)
            att = Attachment(container_id=ns.container_id or default_container_id(netns), netns=netns,
                             ifname=ns.ifname, args=parse_args_text(ns.args),
                             capability_args=dict(parse_cap(c) for c in ns.cap))
            if verb == "add":
                if ns.validate:
                    try:
                        rt.validate(net)
                    finally:
                        validated = rt.last
                outcome = rt.add(net, att)
                print(json.dumps(outcome.raw, indent=4))
            elif verb == "check":
                rt.check(net, att)
            else:
                rt.delete(net, att)
        elif verb == "gc":
            rt.gc(net, [parse_valid(v) for v in ns.valid])
        else:
            rt.status(net)
    finally:
        if validated is not None:
            _report(validated, ns.verbose)
        if rt.last is not validated:
            _report(rt.last, ns.verbose)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in VERBS:
        print(f"usage: pycni {{{','.join(VERBS)}}} NETWORK ...", file=sys.stderr)
        return 2
    verb = args[0]
    ns = build_parser(verb).parse_args(args[1:])
    try:
        return run(verb, ns)
    except CNIError as e:
        print(json.dumps(e.to_dict(), indent=4))
        print(f"pycni {verb}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
