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
# The binary README's install command makes: release profile, static C runtime.
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet --target "$target" >&2
exec python3 shell/bench.py "target/$target/release"
