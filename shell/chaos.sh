#!/usr/bin/env bash
# Runs the chaos suite (shell/chaos.py) against a debug build.
#   bash shell/chaos.sh [ITERATIONS] [SEED]      (a random seed when none is given)
# CHAOS_VICTIMS and CHAOS_PERTURB (comma lists) narrow what is drawn; CHAOS_CONTAIN
# (auto|cgroup|group) is the --contain of every ocwrap it starts, and CHAOS_USER=nobody
# (started as root) runs it as nobody, in a cgroup delegated to nobody with
# CHAOS_CONTAIN=cgroup. See the header of shell/chaos.py for these and the other
# CHAOS_* settings.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
exec python3 shell/chaos.py target/debug "${1:-200}" ${2:+"$2"}
