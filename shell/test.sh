#!/usr/bin/env bash
# The whole test run, as README gives it: formatting, lints, unit and integration
# tests against the built binaries, then the end-to-end run against the real
# opencode server (installed from npm by shell/e2e-opencode.sh), the npm packages
# packed, installed from their tarballs and tested (shell/npm.sh), then the chaos
# suite (shell/chaos.sh) four times: --contain cgroup and group, each as root and as
# nobody; before those, the macOS type-check (shell/xcheck.sh,
# which fetches Debian's Rust and its source with apt and caches them under
# target/) and the Windows build and test run under Wine (shell/windows.sh, which
# installs MinGW and Wine with apt, and builds with the same Rust), then the six
# platform packages built, checked (arm64 Linux on an emulated arm64 kernel, x64
# Windows under Wine) and packed into target/dist/ (shell/dist.sh, which takes zig
# and cargo-zigbuild from PyPI and qemu and the arm64 kernel from Debian, cached
# under target/dist/tools/), which shell/npm.sh installs. Needs the Rust
# toolchain (cargo, rustfmt, clippy), Node.js with npm, python3, and a Linux kernel
# with /proc and pidfds.
set -euo pipefail
cd "$(dirname "$0")/.."

# The ocwrap-* cgroups in our own cgroup (cgroup2 mount and own path read from
# /proc, as ocwrap does), and the chaos-* ones the chaos suite delegates to nobody.
# No test and no chaos iteration may leave one behind.
ocwrap_cgroups() {
  local mount own
  mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
  own=$(sed -n 's/^0:://p' /proc/self/cgroup)
  if [ -n "$mount" ] && [ -n "$own" ]; then
    find "$mount${own%/}" -mindepth 1 -maxdepth 1 -type d \( -name 'ocwrap-*' -o -name 'chaos-*' \) 2>/dev/null | sort
  fi
}
cgroups_before=$(ocwrap_cgroups)
check_no_cgroup_left() {
  local left
  left=$(comm -13 <(echo "$cgroups_before") <(ocwrap_cgroups))
  if [ -n "$left" ]; then
    echo "cgroups left behind after $1:" >&2
    echo "$left" >&2
    exit 1
  fi
}

# The completion and man page tests check their output with zsh, fish and groff
# (they would skip a missing tool, so this run installs them and fails without
# them); the e2e run reads process trees with ps. Debian packages.
missing=()
for tool in zsh:zsh fish:fish groff:groff-base ps:procps; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (completion, man page and e2e checks)"
  if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1; then
    echo "could not install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
log=$(mktemp)
npm_log=$(mktemp)
trap 'rm -f "$log" "$npm_log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# The integration suite's own result in a cargo test log: "passed ignored" of the
# run that follows cargo's "Running tests/ocwrap.rs" (one test binary, one suite
# for every platform: tests/ocwrap.rs).
suite_result() {
  awk '/Running tests\/ocwrap\.rs/ { s = 1; next } /Running / { s = 0 }
    s && /^test result:/ { p += $4; i += $8; s = 0 } END { print p + 0, i + 0 }' "$1"
}
read -r linux_suite _ < <(suite_result "$log")
nobody_suite=0
# The guard's and the local-socket tests once more as nobody, in group
# containment: a user's guard acts with a user's rights (the sweep's reads of
# other processes, its own session), and a user's broker, notify socket and
# readiness pipe are a user's.
if [ "$(id -u)" = 0 ]; then
  echo "== the guard's and the local-socket tests again, as nobody"
  suite=$(cargo test --locked --no-run --test ocwrap 2>&1 | sed -n 's/.*Executable tests\/ocwrap\.rs (\(.*\))$/\1/p')
  [ -n "$suite" ] || { echo "cannot find the integration suite's executable" >&2; exit 1; }
  # Copies nobody can reach, wherever the checkout is (SUITE_BIN_DIR: see
  # tests/support/mod.rs).
  bins=$(mktemp -d)
  chmod 755 "$bins"
  install -m 755 "$suite" target/debug/ocwrap target/debug/ocwrap-fixture "$bins/"
  (cd "$bins" && SUITE_BIN_DIR=$bins setpriv --reuid nobody --regid nogroup --clear-groups \
    "$bins/$(basename "$suite")" guard:: socket::) 2>&1 | tee -a "$log"
  rm -rf "$bins"
  nobody_suite=$(awk '/^test result:/ { n = $4 } END { print n + 0 }' "$log")
fi
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
check_no_cgroup_left "cargo test"
echo "== macOS: type-check and clippy for both Apple targets (shell/xcheck.sh)"
bash shell/xcheck.sh
echo "== Windows: type-check and clippy for both targets, tests under Wine (shell/windows.sh)"
bash shell/windows.sh 2>&1 | tee "$log"
read -r wpassed wfailed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
read -r wine_suite wine_ignored < <(suite_result "$log")
echo "== npm platform packages: six binaries built, checked and packed (shell/dist.sh)"
bash shell/dist.sh 2>&1 | tee "$log"
dist_passed=$(awk '/^dist: [0-9]+ passed, 0 failed$/ { print $2 }' "$log")
[ -n "$dist_passed" ] || { echo "shell/dist.sh printed no count" >&2; exit 1; }
arm64_suite=$(awk '/arm64vm: suite: [0-9]+ passed/ { n = $3 } END { print n + 0 }' "$log")
echo "== end-to-end against the real opencode server"
bash shell/e2e-opencode.sh
echo "== npm packages: installed offline from the tarballs, tested with node --test and npx"
bash shell/npm.sh 2>&1 | tee "$npm_log"
npm_passed=$(awk '/^npm: [0-9]+ passed, [0-9]+ failed$/ { print $2 }' "$npm_log")
check_no_cgroup_left "the end-to-end run and the npm tests"
# The chaos suite in both containment modes, as root and as nobody; nobody's cgroup
# run is in a cgroup the suite delegates to nobody (and removes again).
chaos_passed=0
for mode in root:cgroup root:group nobody:group nobody:cgroup; do
  user=${mode%%:*} contain=${mode#*:}
  echo "== chaos: 200 random SIGKILLs as $user, --contain $contain" \
    "(seed printed; replay with CHAOS_USER=$user CHAOS_CONTAIN=$contain shell/chaos.sh 200 SEED)"
  CHAOS_USER=$user CHAOS_CONTAIN=$contain bash shell/chaos.sh 200 2>&1 | tee "$log"
  chaos_passed=$((chaos_passed + $(awk '/^chaos: [0-9]+ passed, 0 failed/ { n = $2 } END { print n + 0 }' "$log")))
  check_no_cgroup_left "the chaos suite as $user with --contain $contain"
done
# One closing line for the whole run: every cargo test (Linux, and Windows under
# Wine with its kill -9 check), the platform packages' checks (shell/dist.sh), the
# three e2e scenarios, the npm checks (node tests,
# type check, README Level 2) and the iterations of the four chaos runs (set -e has
# already stopped the run if any failed); then the integration scenarios each
# platform ran: natively on Linux (and again as nobody), under Wine of those it
# shares (the rest ignored there, each with its reason: shell/scenarios.py), on
# the emulated arm64 kernel, and the ones macOS only type-checks.
echo "tests: $((passed + wpassed + 1 + dist_passed + 3 + npm_passed + chaos_passed)) passed, $((failed + wfailed)) failed" \
  "(scenarios: linux-x64 $linux_suite run natively (+$nobody_suite as nobody)," \
  "win32-x64 $wine_suite run under Wine ($wine_ignored ignored)," \
  "linux-arm64 $arm64_suite run on the emulated arm64 kernel," \
  "macOS $(python3 shell/scenarios.py --count unix) type-checked)"
