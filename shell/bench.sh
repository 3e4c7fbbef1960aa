#!/usr/bin/env bash
# Measures ocwrap beside the tools a user would otherwise pick and prints one
# markdown report on stdout (see shell/bench.py for what each figure is).
# Installs its peers (tini, dumb-init, catatonit, hyperfine) from Debian when
# missing, and builds ocwrap in release mode. Run as root on a fresh machine:
#   bash shell/bench.sh > report.md
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in tini dumb-init catatonit hyperfine; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
cargo build --release --locked --quiet >&2
exec python3 shell/bench.py target/release
