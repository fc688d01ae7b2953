"""The `pycni` command. Subcommands import their machinery only when chosen."""
from __future__ import annotations

import argparse
import sys


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
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
