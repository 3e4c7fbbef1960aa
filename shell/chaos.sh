#!/usr/bin/env bash
# Runs the chaos suite (shell/chaos.py) against a debug build.
#   bash shell/chaos.sh [ITERATIONS] [SEED]      (a random seed when none is given)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
exec python3 shell/chaos.py target/debug "${1:-200}" ${2:+"$2"}
