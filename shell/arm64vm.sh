#!/usr/bin/env bash
# Runs the linux-arm64 ocwrap binary on a real arm64 Linux kernel: Debian's arm64
# kernel booted by qemu-system-aarch64 (software emulation; this machine is
# x86-64), with an initramfs of busybox, the binary and shell/arm64vm/init.sh as
# PID 1, which runs the scenarios and reports over the serial console.
#
#   bash shell/arm64vm.sh BINARY VERSION
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

# The arm64 kernel and busybox, through a private apt state that knows arm64 only.
arm=$tools/arm64
fetch_arm64() {
  local state=$tools/apt-arm64
  rm -rf "$state" "$arm.partial"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$arm.partial/debs"
  : >"$state/status"
  local opts=(-o APT::Architecture=arm64 -o "APT::Architectures::=arm64"
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o "Dir::State::status=$state/status" -o Debug::NoLocking=1 "${sandbox[@]}")
  say "apt-get update for arm64 (private lists under $state)"
  apt-get "${opts[@]}" update -qq --error-on=any || fail "apt-get update of the arm64 lists failed"
  local kernel
  kernel=$(apt-cache "${opts[@]}" show --no-all-versions linux-image-arm64 \
    | awk '$1 == "Depends:" { print $2; exit }')
  [[ $kernel == linux-image-*-arm64 ]] || fail "linux-image-arm64 names no kernel package: '$kernel'"
  say "downloading $kernel busybox-static (arm64)"
  (cd "$arm.partial/debs" && apt-get "${opts[@]}" download -q "$kernel" busybox-static >/dev/null) \
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

# The initramfs: busybox, the binary, its version, a helper and the scenario script
# as /init.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/fs/bin"
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
python3 shell/initramfs.py "$work/fs" "$work/initrd.gz"

say "booting $(cat "$arm/kernel.txt") under $("$qemu" --version | head -n1)"
log=$work/console.log
# -no-reboot with panic=-1: a kernel panic ends qemu too. The deadline is the
# whole boot plus every scenario under software emulation, with room to spare.
rc=0
timeout 600 "$qemu" -M virt -cpu cortex-a57 -smp 2 -m 1024 -nodefaults -nographic -no-reboot \
  -serial "file:$log" -kernel "$arm/vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyAMA0 panic=-1 quiet rdinit=/init" </dev/null >/dev/null 2>"$work/qemu.err" || rc=$?
grep '^arm64vm:' "$log" | tr -d '\r' | sed 's/^/  /' || true
[ "$rc" -ne 124 ] || fail "the VM did not power off within 600 s"
[ "$rc" -eq 0 ] || fail "qemu exited $rc: $(cat "$work/qemu.err")"
summary=$(grep -a '^arm64vm: [0-9]* passed, [0-9]* failed' "$log" | tr -d '\r' | tail -n1)
[ -n "$summary" ] || { tail -n 30 "$log" >&2; fail "the VM printed no summary (console tail above)"; }
[[ $summary == *" 0 failed" ]] || fail "on the arm64 kernel: ${summary#arm64vm: }"
say "on the arm64 kernel: ${summary#arm64vm: }"
