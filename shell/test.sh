#!/usr/bin/env bash
# The whole test run, as README gives it: formatting, lints, unit and integration
# tests against the built binaries. Needs only the Rust toolchain (cargo, rustfmt,
# clippy) and a Linux kernel with /proc and pidfds.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "cargo test: %d passed, %d failed\n", p, f }' "$log"
