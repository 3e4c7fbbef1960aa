#!/usr/bin/env bash
# Runs the linux-arm64 ocwrap binary, and the project's integration test suite
# built for the same target, on a real arm64 Linux kernel: Debian's arm64 kernel
# booted by qemu-system-aarch64 (software emulation; this machine is x86-64), with
# an initramfs of busybox, the binaries and shell/arm64vm/init.sh as PID 1, which
# runs the scenarios and the suite and reports over the serial console.
#
#   bash shell/arm64vm.sh BINARY VERSION
#
# What runs in the VM, in order:
#   1. the scenarios, on BINARY (the release build, e.g. from the packed tarball):
#      `--version`, an owner SIGKILLed with the whole tree gone (--contain cgroup,
#      group, and as nobody), no cgroup left, an up/status/release round trip; the
#      line `arm64vm: N passed, M failed` counts them (shell/dist.sh reads it);
#   2. the integration suite (tests/ocwrap.rs, the test binary `cargo test --test
#      ocwrap` builds) cross-built here for aarch64-unknown-linux-musl, debug
#      profile, with that build's ocwrap-fixture and BINARY itself as the
#      ocwrap under test (SUITE_BIN_DIR, see
#      tests/support/mod.rs), as root, minus the tests in `skip` below (each with
#      its reason); the line `arm64vm: suite: P passed, F failed, I ignored, S
#      skipped` counts them, with each failing test's name before it, and no
#      ocwrap cgroup may be left after it. The suite's whole console output is
#      kept in target/arm64suite/console.log.
# Either part failing fails the run. ARM64VM_SUITE=0 leaves the suite out (the
# scenarios only); ARM64VM_SUITE_FILTER="NAME…" runs only the tests whose names
# contain one of the NAMEs (libtest's filters, e.g. "suite::guard::"), for a
# quicker look at some of them.
#
# The suite's build uses the recipe of build_cross in shell/dist.sh (Debian's Rust
# from target/xcheck/toolchain with -Zbuild-std, linked by zig through
# cargo-zigbuild from target/dist/tools/zig), with std,panic_unwind instead of
# panic_abort (libtest catches each test's panic, and #[should_panic] needs it),
# without debuginfo (smaller binaries in the VM's RAM), into target/arm64suite so
# that warm runs rebuild only what changed.
#
# qemu-user is no stand-in: it rejects PR_SET_CHILD_SUBREAPER, so ocwrap exits
# 125 under it; this is the kernel itself.
#
# Nothing is installed. qemu-system-arm and the libraries it needs that this
# machine lacks are downloaded with `apt-get download` and unpacked under
# target/dist/tools/qemu (installing qemu-system-arm on Debian 12 would remove a
# newer qemu-utils the machine may have). The arm64 kernel and busybox-static come
# from Debian's arm64 archive through a private apt state under
# target/dist/tools/apt-arm64 (the machine's sources, arm64 lists of its own: the
# system's apt and dpkg are not touched, and no root is needed). All of it is
# cached; DIST_REFRESH=1 fetches it again. A part that cannot be had fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[ $# -eq 2 ] || { echo "usage: bash shell/arm64vm.sh BINARY VERSION" >&2; exit 2; }
binary=$1 version=$2
[ -f "$binary" ] || { echo "arm64vm: no binary at $binary" >&2; exit 2; }

tools=$root/target/dist/tools
say() { printf 'arm64vm [%ss]: %s\n' "$SECONDS" "$*"; }
fail() { printf 'arm64vm: FAILED: %s\n' "$*" >&2; exit 1; }

sandbox=()
[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)

# Every package PKG depends on, recursively, that dpkg does not have installed.
missing_closure() {
  local todo=("$1") seen=" " got=() p d
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    case $seen in *" $p "*) continue ;; esac
    seen="$seen$p "
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ] || continue
    got+=("$p")
    for d in $(apt-cache depends --no-recommends --no-suggests --no-enhances --no-conflicts \
      --no-breaks --no-replaces "$p" 2>/dev/null | awk '$1 == "Depends:" && $2 !~ /^</ { print $2 }'); do
      todo+=("$d")
    done
  done
  echo "${got[@]}"
}

qemu_dir=$tools/qemu
qemu_env() {
  export LD_LIBRARY_PATH=$qemu_dir/usr/lib/x86_64-linux-gnu:$qemu_dir/lib/x86_64-linux-gnu
}
fetch_qemu() {
  local packages staging=$tools/qemu.partial
  packages=$(missing_closure qemu-system-arm)
  [ -n "$packages" ] || packages=qemu-system-arm
  # qemu-system-data holds firmware and keymaps; booting a kernel with -kernel on
  # the virt machine needs neither.
  packages=$(tr ' ' '\n' <<<"$packages" | grep -vx -e qemu-system-data -e qemu-system-common | tr '\n' ' ')
  say "downloading $packages"
  rm -rf "$staging"
  mkdir -p "$staging/debs"
  # shellcheck disable=SC2086 # one word per package
  (cd "$staging/debs" && apt-get download -q "${sandbox[@]}" $packages >/dev/null) \
    || fail "apt-get download of $packages (as the machine's apt lists have it; run apt-get update?)"
  local deb
  for deb in "$staging"/debs/*.deb; do dpkg-deb -x "$deb" "$staging" || fail "cannot unpack $deb"; done
  rm -rf "$staging/debs" "$qemu_dir"
  mv "$staging" "$qemu_dir"
}
if [ "${DIST_REFRESH:-0}" = 1 ] || [ ! -x "$qemu_dir/usr/bin/qemu-system-aarch64" ]; then
  fetch_qemu
fi
qemu_env
qemu=$qemu_dir/usr/bin/qemu-system-aarch64
if ! "$qemu" --version >/dev/null 2>&1; then
  ldd "$qemu" | grep 'not found' >&2 || true
  fail "the unpacked qemu-system-aarch64 does not run (missing libraries above?); try DIST_REFRESH=1"
fi

# A private apt state under STATE that knows arm64 only (the machine's sources,
# lists of its own), updated; its apt options in arm64_opts.
arm64_apt() {
  local state=$1
  rm -rf "$state"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  : >"$state/status"
  arm64_opts=(-o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o "Dir::State::status=$state/status" -o Debug::NoLocking=1 "${sandbox[@]}")
  say "apt-get update for arm64 (private lists under $state)"
  apt-get "${arm64_opts[@]}" update -qq --error-on=any || fail "apt-get update of the arm64 lists failed"
}

# The arm64 kernel and busybox.
arm=$tools/arm64
fetch_arm64() {
  local state=$tools/apt-arm64
  rm -rf "$arm.partial"
  mkdir -p "$arm.partial/debs"
  arm64_apt "$state"
  local kernel
  kernel=$(apt-cache "${arm64_opts[@]}" show --no-all-versions linux-image-arm64 \
    | awk '$1 == "Depends:" { print $2; exit }')
  [[ $kernel == linux-image-*-arm64 ]] || fail "linux-image-arm64 names no kernel package: '$kernel'"
  say "downloading $kernel busybox-static (arm64)"
  (cd "$arm.partial/debs" && apt-get "${arm64_opts[@]}" download -q "$kernel" busybox-static >/dev/null) \
    || fail "apt-get download of $kernel busybox-static for arm64"
  local deb
  for deb in "$arm.partial"/debs/*.deb; do dpkg-deb -x "$deb" "$arm.partial/root" || fail "cannot unpack $deb"; done
  mv "$arm.partial"/root/boot/vmlinuz-* "$arm.partial/vmlinuz"
  mv "$arm.partial/root/bin/busybox" "$arm.partial/busybox"
  echo "$kernel" >"$arm.partial/kernel.txt"
  rm -rf "$arm.partial/root" "$arm.partial/debs" "$state" "$arm"
  mv "$arm.partial" "$arm"
}
if [ "${DIST_REFRESH:-0}" = 1 ] || [ ! -f "$arm/kernel.txt" ]; then
  fetch_arm64
fi

# --- the integration suite, built for aarch64-unknown-linux-musl ---------------------
suite=${ARM64VM_SUITE:-1}
case $suite in 0 | 1) ;; *) fail "ARM64VM_SUITE is 0 or 1, not '$suite'" ;; esac
# Tests that cannot run in this VM, by exact name (libtest --skip with --exact),
# each with its reason; the VM checks that each still names a test. None so far:
# all 155 run. (The completion and man page tests find no zsh, fish or groff in
# the VM and, as anywhere without them, leave those checks out; bash is there.)
skip=(
)
# The suite's bound inside the VM (busybox timeout around the test binary), and
# the whole VM's: boot and scenarios (5 s), the suite, the report after it. The
# suite takes 105-125 s here (2 cores, --test-threads=2; the slowest test 17 s);
# four times that is its bound, and a suite that needs more fails the run. The
# VM's bound is the suite's and 2 minutes: 600 s, the bound the scenarios alone
# had before.
suite_limit=480
vm_limit=$((suite_limit + 120))
# One test thread per vCPU (-smp 2 below, on a 2-core machine).
suite_threads=2

suite_dir=$root/target/arm64suite
# A shell that is not busybox, for the suite's `sh`: the session tests start `sh`
# with argv[0] `claude` (the Claude Code CLI's process title), and busybox picks
# its applet by argv[0] ("claude: applet not found"). Debian's bash-static for
# arm64, through a private apt state as the kernel is; cached under
# target/arm64suite/tools (DIST_REFRESH=1 fetches it again).
suite_sh=$suite_dir/tools/bash-static
fetch_suite_sh() {
  local state=$suite_dir/tools/apt-arm64 partial=$suite_sh.partial
  rm -rf "$partial"
  mkdir -p "$partial/debs"
  arm64_apt "$state"
  say "downloading bash-static (arm64)"
  (cd "$partial/debs" && apt-get "${arm64_opts[@]}" download -q bash-static >/dev/null) \
    || fail "apt-get download of bash-static for arm64"
  dpkg-deb -x "$partial"/debs/bash-static_*.deb "$partial/root" || fail "cannot unpack bash-static"
  mv "$partial/root/bin/bash-static" "$partial/bash"
  dpkg-deb -f "$partial"/debs/bash-static_*.deb Version >"$partial/version.txt"
  rm -rf "$partial/root" "$partial/debs" "$state" "$suite_sh"
  mv "$partial" "$suite_sh"
}
build_suite() {
  local toolchain=$root/target/xcheck/toolchain venv=$tools/zig
  [ -x "$toolchain/usr/bin/rustc" ] || fail "no Debian Rust under $toolchain (shell/xcheck.sh --toolchain-only fetches it)"
  [ -x "$venv/bin/cargo-zigbuild" ] || fail "no cargo-zigbuild under $venv (shell/dist.sh installs it)"
  (
    export RUSTC=$toolchain/usr/bin/rustc
    export LD_LIBRARY_PATH=$toolchain/usr/lib/x86_64-linux-gnu
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_DIR=$suite_dir
    export PATH=$venv/bin:$PATH
    # No debuginfo: the binaries live in the VM's RAM (test inherits dev).
    export CARGO_PROFILE_DEV_DEBUG=0
    # The build-std sysroot has no self-contained crt objects; zig brings its own.
    RUSTFLAGS="-C link-self-contained=no" cargo-zigbuild test --locked --quiet --no-run --test ocwrap \
      -Zbuild-std=std,panic_unwind --target aarch64-unknown-linux-musl --message-format=json-render-diagnostics
  ) >"$work/build.json" || fail "the arm64 build of the integration suite"
  # The executables, by what cargo says it built (the test binary's name has a hash).
  python3 - "$work/build.json" "$work/fs/suite" <<'PY' || fail "cargo named no test binary and no ocwrap and ocwrap-fixture"
import json, shutil, sys
found = {}
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    target = message["target"]
    if message["profile"]["test"] and target["kind"] == ["test"] and target["name"] == "ocwrap":
        found["ocwrap-suite"] = message["executable"]
    elif target["kind"] == ["bin"] and target["name"] in ("ocwrap", "ocwrap-fixture"):
        found[target["name"]] = message["executable"]
if sorted(found) != ["ocwrap", "ocwrap-fixture", "ocwrap-suite"]:
    sys.exit(f"found only {found}")
for name, path in found.items():
    shutil.copy(path, f"{sys.argv[2]}/{name}")
PY
}

# The initramfs: busybox, the binary, its version, a helper and the scenario script
# as /init; the suite's three binaries, its arguments and skip list under /suite.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/fs/bin" "$work/fs/etc"
install -m 0755 "$arm/busybox" "$work/fs/bin/busybox"
install -m 0755 "$binary" "$work/fs/ocwrap"
install -m 0755 shell/arm64vm/init.sh "$work/fs/init"
# asuser: the scenarios as nobody (busybox's setpriv cannot change user ids), built
# with the zig that shell/dist.sh installs.
zig_python=$tools/zig/bin/python
[ -x "$zig_python" ] || fail "no zig under $tools/zig (shell/dist.sh installs it)"
"$zig_python" -m ziglang cc -target aarch64-linux-musl -static -O2 -s \
  -o "$work/fs/bin/asuser" shell/arm64vm/asuser.c || fail "cannot build shell/arm64vm/asuser.c"
echo "$version" >"$work/fs/version"
# root and nobody, as on the machines the suite runs on otherwise.
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$work/fs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$work/fs/etc/group"
if [ "$suite" = 1 ]; then
  if [ "${DIST_REFRESH:-0}" = 1 ] || [ ! -f "$suite_sh/version.txt" ]; then
    fetch_suite_sh
  fi
  mkdir -p "$work/fs/suite/sh"
  install -m 0755 "$suite_sh/bash" "$work/fs/suite/sh/sh"
  # And as bash, for the check of the bash completions (zsh, fish and groff are
  # not in the VM: the completion and man page tests skip those checks there).
  ln -s sh "$work/fs/suite/sh/bash"
  # The files a test reads from the checkout (env!("CARGO_MANIFEST_DIR")), at the
  # same path as here.
  for file in README.md npm/ocwrap/index.d.ts; do
    install -D -m 0644 "$file" "$work/fs$root/$file"
  done
  began=$SECONDS
  build_suite
  say "built the integration suite for aarch64-unknown-linux-musl in $((SECONDS - began))s:" \
    "$(cd "$work/fs/suite" && du -k ocwrap-suite ocwrap-fixture | awk '{ printf "%s %s KiB; ", $2, $1 }')"
  # The ocwrap the suite runs is the binary under test, the one from the tarball
  # (/ocwrap), not the debug build that came with the test binary.
  rm "$work/fs/suite/ocwrap"
  ln -s ../ocwrap "$work/fs/suite/ocwrap"
  # The test binary's arguments, one a line: the filters or --exact, the skips.
  {
    echo "--test-threads=$suite_threads"
    # Each test's time on its line (libtest's unstable --report-time, which the
    # test binary allows with RUSTC_BOOTSTRAP set, as /init sets it).
    printf '%s\n' -Zunstable-options --report-time
    if [ -n "${ARM64VM_SUITE_FILTER:-}" ]; then
      tr ' ' '\n' <<<"$ARM64VM_SUITE_FILTER" | grep -v '^$'
    else
      echo --exact
    fi
    for name in "${skip[@]}"; do printf -- '--skip\n%s\n' "$name"; done
  } >"$work/fs/suite/args"
  printf '%s\n' "${skip[@]}" | grep -v '^$' >"$work/fs/suite/skip" || true
  echo "$suite_limit" >"$work/fs/suite/limit"
fi
python3 shell/initramfs.py "$work/fs" "$work/initrd.gz"

say "booting $(cat "$arm/kernel.txt") under $("$qemu" --version | head -n1)"
log=$work/console.log
# -no-reboot with panic=-1: a kernel panic ends qemu too. The deadline is the
# whole boot, every scenario and the suite's own bound under software emulation,
# with room to spare.
[ "$suite" = 1 ] || vm_limit=600
rc=0
began=$SECONDS
timeout "$vm_limit" "$qemu" -M virt -cpu cortex-a57 -smp 2 -m 1024 -nodefaults -nographic -no-reboot \
  -serial "file:$log" -kernel "$arm/vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyAMA0 panic=-1 quiet rdinit=/init" </dev/null >/dev/null 2>"$work/qemu.err" || rc=$?
if [ "$suite" = 1 ]; then
  tr -d '\r' <"$log" >"$suite_dir/console.log"
fi
grep -a '^arm64vm:' "$log" | tr -d '\r' | sed 's/^/  /' || true
[ "$rc" -ne 124 ] || fail "the VM did not power off within $vm_limit s"
[ "$rc" -eq 0 ] || fail "qemu exited $rc: $(cat "$work/qemu.err")"
say "the VM ran for $((SECONDS - began))s"
summary=$(grep -a '^arm64vm: [0-9]* passed, [0-9]* failed' "$log" | tr -d '\r' | tail -n1)
[ -n "$summary" ] || { tail -n 30 "$log" >&2; fail "the VM printed no summary (console tail above)"; }
[[ $summary == *" 0 failed" ]] || fail "on the arm64 kernel: ${summary#arm64vm: }"
if [ "$suite" = 1 ]; then
  result=$(grep -a '^arm64vm: suite: [0-9]* passed, [0-9]* failed' "$log" | tr -d '\r' | tail -n1)
  [ -n "$result" ] || fail "the suite gave no result (its output: $suite_dir/console.log)"
  [[ $result == *" 0 failed, "* ]] || fail "integration suite (arm64 kernel): ${result#arm64vm: suite: } (its output: $suite_dir/console.log)"
  say "integration suite (arm64 kernel): ${result#arm64vm: suite: }"
fi
say "on the arm64 kernel: ${summary#arm64vm: }"
