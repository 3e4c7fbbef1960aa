#!/usr/bin/env bash
# The whole test run, as README gives it: formatting, lints, unit and integration
# tests against the built binaries, then the end-to-end run against the real
# opencode server (installed from npm by shell/e2e-opencode.sh). Needs the Rust
# toolchain (cargo, rustfmt, clippy), Node.js with npm, and a Linux kernel with
# /proc and pidfds.
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
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
echo "== end-to-end against the real opencode server"
bash shell/e2e-opencode.sh
# One closing line for the whole run: every cargo test plus the three e2e scenarios
# (set -e has already stopped the run if any of them failed).
echo "tests: $((passed + 3)) passed, $failed failed"
