#!/usr/bin/env bash
# The main job, shown: two containers wired onto a bridge network in private namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pycni demo "$@"
