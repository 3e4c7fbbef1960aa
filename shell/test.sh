#!/usr/bin/env bash
# The whole test run, as README gives it: formatting, lints, unit and integration
# tests against the built binaries, then the end-to-end run against the real
# opencode server (installed from npm by shell/e2e-opencode.sh), then the chaos
# suite (shell/chaos.sh). Needs the Rust
# toolchain (cargo, rustfmt, clippy), Node.js with npm, python3, and a Linux kernel with
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
echo "== chaos: 200 random SIGKILLs (seed printed; replay with shell/chaos.sh 200 SEED)"
bash shell/chaos.sh 200
# One closing line for the whole run: every cargo test, the three e2e scenarios and
# the 200 chaos iterations (set -e has already stopped the run if any failed).
echo "tests: $((passed + 3 + 200)) passed, $failed failed"
