#!/usr/bin/env bash
# Install everything pycni needs on a fresh Debian machine, as root: the system packages the
# plugins, tests, interop checks and the podman end-to-end test use, and a virtualenv (.venv)
# holding pycni and its Python dependencies. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  iproute2 iptables nftables util-linux procps kmod   # the plugins' firewall tools; nsenter/unshare for tests
  containernetworking-plugins                         # the Go reference, for interop tests and the benchmark
  podman runc conmon busybox-static                   # the real-runtime end-to-end test
  python3 python3-venv
)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own interpreter by default: it is built with PGO and LTO and linked statically, so it
# starts about 2 ms sooner and runs the plugins about 10% faster than a shared-library build such as
# pyenv's (measured in docs/performance.md). PYCNI_PYTHON picks another one (3.11 or newer).
usable() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
python=${PYCNI_PYTHON:-/usr/bin/python3}
if ! usable "$python"; then
  python=$(command -v python3)
fi
want=$(readlink -f "$python")
have=$(.venv/bin/python -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  echo "setup: creating .venv with $python" >&2
  rm -rf .venv
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -E '^(WARNING: Location|$)' >&2 || true
.venv/bin/python -c 'import pyroute2, jsonschema, filelock, pytest, hypothesis' \
  || { echo "setup: Python dependencies failed to install" >&2; exit 1; }
echo "setup: ready (.venv/bin/pycni)" >&2
