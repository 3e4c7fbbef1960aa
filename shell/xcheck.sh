#!/usr/bin/env bash
# Type-checks and lints ocwrap for the Apple targets on this Linux machine kind, where
# rustup cannot download other targets. Nothing is linked or run: it proves that
# src/sys/macos/ and the portable code compile for macOS, not that they work there.
#
#   bash shell/xcheck.sh [TARGET…]     (default: aarch64-apple-darwin x86_64-apple-darwin)
#   bash shell/xcheck.sh --toolchain-only   (fetch the toolchain if it is not cached; no check)
#
# Debian's own Rust (the rustc-web packages) can build the standard library for any
# target from its source, so this script downloads — never installs — Debian's
# rustc-web, its standard library, its source, its clippy and the libLLVM they link,
# unpacks them under target/xcheck/toolchain, and runs cargo with that rustc and
# `-Zbuild-std`. The standard library's source builds only with the compiler it was
# released with (rustup's 1.95 failed on Debian's 1.96 source), so every
# package is taken at the version of the rustc-web package, looked up with apt-cache
# at run time: the versioned names (libstd-rust-web-1.NN, libllvmNN) move with
# security updates.
#
# Cached: the unpacked toolchain (target/xcheck/toolchain, reused without asking apt
# again; XCHECK_REFRESH=1 fetches the current one) and the built std with everything
# else (target/xcheck/build, its own CARGO_TARGET_DIR, so the host build is untouched).
# A toolchain that cannot be fetched fails the run: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

xcheck=$root/target/xcheck
toolchain=$xcheck/toolchain
toolchain_only=0
if [ "${1:-}" = --toolchain-only ]; then
  toolchain_only=1
  shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-apple-darwin x86_64-apple-darwin)

say() { printf 'xcheck [%ss]: %s\n' "$SECONDS" "$*"; }
fail() { printf 'xcheck: FAILED: %s\n' "$*" >&2; exit 1; }

# One field of a package's candidate version, as apt would download it; empty when
# apt knows no such package (each caller says what that means).
field() {
  { apt-cache show --no-all-versions "$1" 2>/dev/null || true; } \
    | awk -v want="$2:" '$1 == want { sub(/^[^:]*:[ ]*/, ""); print; exit }'
}

# Resolves the package set for the current rustc-web, downloads it with
# `apt-get download` and unpacks it into a fresh $toolchain (atomically: a run
# interrupted half-way leaves no toolchain that looks complete).
fetch_toolchain() {
  if [ "$(id -u)" -eq 0 ]; then
    say "apt-get update"
    # --error-on=any: a mirror that cannot be reached is an error, not a warning
    # followed by stale lists.
    apt-get update -qq --error-on=any || fail "apt-get update failed: cannot look up Debian's rustc-web"
  else
    say "not root: resolving with the apt lists as they are (no apt-get update)"
  fi
  local version std_dev_deps std_versioned std_deps llvm llvm_version
  version=$(field rustc-web Version)
  [ -n "$version" ] || fail "apt-cache knows no rustc-web (is this Debian 12 with its lists?)"
  std_dev_deps=$(field libstd-rust-web-dev Depends)
  std_versioned=$(grep -oE 'libstd-rust-web-1\.[0-9]+' <<<"$std_dev_deps" | head -n1 || true)
  [ -n "$std_versioned" ] || fail "libstd-rust-web-dev names no libstd-rust-web-1.NN: '$std_dev_deps'"
  std_deps=$(field "$std_versioned" Depends)
  llvm=$(grep -oE 'libllvm[0-9]+' <<<"$std_deps" | head -n1 || true)
  [ -n "$llvm" ] || fail "$std_versioned names no libllvmNN: '$std_deps'"
  llvm_version=$(field "$llvm" Version)
  [ -n "$llvm_version" ] || fail "apt-cache has no candidate for $llvm"

  # rust-web-clippy ships cargo-clippy and clippy-driver built against this very
  # rustc_driver, so clippy runs with the same compiler as the check.
  local packages=(
    "rustc-web=$version"
    "libstd-rust-web-dev=$version"
    "$std_versioned=$version"
    "rust-web-src=$version"
    "rust-web-clippy=$version"
    "$llvm=$llvm_version"
  )
  local debs=$xcheck/debs staging=$xcheck/toolchain.partial
  rm -rf "$debs" "$staging"
  mkdir -p "$debs" "$staging"
  # As root, apt first tries its _apt user, which cannot write under target/, and
  # warns before downloading as root anyway: ask for root directly.
  local sandbox=()
  [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
  say "downloading ${packages[*]}"
  (cd "$debs" && apt-get download -q "${sandbox[@]}" "${packages[@]}") \
    || fail "apt-get download failed for ${packages[*]}"
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$staging" || fail "cannot unpack $deb"
  done
  {
    printf 'packages:'
    printf ' %s' "${packages[@]}"
    printf '\ndownloaded: %s bytes\n' "$(cat "$debs"/*.deb | wc -c)"
  } >"$staging/xcheck-packages.txt"
  rm -rf "$toolchain" "$debs"
  mv "$staging" "$toolchain"
}

if [ "${XCHECK_REFRESH:-0}" = 1 ] || [ ! -f "$toolchain/xcheck-packages.txt" ]; then
  fetch_toolchain
else
  say "cached toolchain: $(head -n1 "$toolchain/xcheck-packages.txt")"
fi
[ "$toolchain_only" -eq 0 ] || exit 0

export RUSTC=$toolchain/usr/bin/rustc
export RUSTDOC=$toolchain/usr/bin/rustdoc
export LD_LIBRARY_PATH=$toolchain/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# -Zbuild-std is unstable; this makes the stable cargo and Debian's rustc accept it.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$xcheck/build
# Debian's cargo-clippy runs `$CARGO`; keep it the machine's cargo (Debian's cargo-web
# would need libraries this machine does not have).
CARGO=$(command -v cargo) || fail "no cargo on PATH"
export CARGO

"$RUSTC" -vV >/dev/null 2>&1 || {
  ldd "$RUSTC" | grep 'not found' >&2 || true
  fail "the unpacked rustc does not run (missing libraries above?); try XCHECK_REFRESH=1"
}
sysroot=$("$RUSTC" --print sysroot)
[ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ] \
  || fail "no standard library source under $sysroot/lib/rustlib/src/rust"
say "$("$RUSTC" -V), $("$toolchain/usr/bin/clippy-driver" -V), cargo $("$CARGO" -V | cut -d' ' -f2)"

build_std=(-Zbuild-std=std,panic_abort)
for target in "${targets[@]}"; do
  say "cargo check --all-targets --target $target"
  "$CARGO" check --locked --quiet --all-targets "${build_std[@]}" --target "$target" \
    || fail "cargo check for $target"
  say "cargo clippy --all-targets --target $target -- -D warnings"
  "$toolchain/usr/bin/cargo-clippy" clippy --locked --quiet --all-targets "${build_std[@]}" \
    --target "$target" -- -D warnings \
    || fail "cargo clippy for $target"
done
say "ok: ${targets[*]} type-check and are clippy-clean (compiled only; nothing ran)"
