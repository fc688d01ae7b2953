"""The `pycni` command. Subcommands import their machinery only when chosen.

`install` lives here; the runtime driver verbs (add, check, del, gc, status), the conformance
harness and the demo are forwarded to their own packages with the remaining arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

FORWARDED = {
    "add": ("conformance.runtime_cli", "run a network's plugin chain like a runtime (libcni)"),
    "check": ("conformance.runtime_cli", "CHECK an attachment with its cached result"),
    "del": ("conformance.runtime_cli", "DEL an attachment with its cached result"),
    "gc": ("conformance.runtime_cli", "GC a network, keeping the valid attachments"),
    "status": ("conformance.runtime_cli", "ask a network's plugins whether they can serve ADD"),
    "conformance": ("conformance.harness_cli", "certify a directory of CNI plugins"),
    "serve": ("shared.server", "keep the plugins loaded and serve the installed executables (warm path)"),
    "demo": ("bridge_plugin.demo", "wire two containers onto a bridge network and show them talking"),
}


def _cmd_install(ns: argparse.Namespace) -> int:
    from .install import install

    for path in install(ns.bin_dir):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pycni", description="CNI bridge and host-local in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="write the bridge and host-local executables into a CNI bin dir")
    p.add_argument("--bin-dir", default="/opt/cni/bin", help="target directory (default /opt/cni/bin)")
    p.set_defaults(func=_cmd_install)
    for name, (_, text) in FORWARDED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in FORWARDED:
        module = importlib.import_module(FORWARDED[args[0]][0])
        # each forwarded module's main takes the full argv including the verb
        return int(module.main(args))
    ns = build_parser().parse_args(args)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
