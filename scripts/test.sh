#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root: set-up, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
