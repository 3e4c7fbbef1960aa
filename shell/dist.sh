#!/usr/bin/env bash
# Builds the ocwrap binary for every platform package from this checkout, checks
# each by what it is, and packs every npm package into target/dist/:
#
#   bash shell/dist.sh            (README's install section says what each check ran)
#
#   package        Rust target                  linked by
#   linux-x64      x86_64-unknown-linux-gnu     the machine's Rust, static glibc (crt-static)
#   linux-arm64    aarch64-unknown-linux-musl   zig (cargo-zigbuild), static musl
#   darwin-arm64   aarch64-apple-darwin         zig, libSystem only, macOS 11.0 or later
#   darwin-x64     x86_64-apple-darwin          zig, libSystem only, macOS 10.12 or later
#   win32-x64      x86_64-pc-windows-gnu        MinGW
#   win32-arm64    aarch64-pc-windows-gnullvm   zig (its MinGW-w64 for arm64)
#
# rustup cannot fetch other targets here, so every target but linux-x64 is built
# with Debian's own Rust (the toolchain shell/xcheck.sh downloads and caches under
# target/xcheck/toolchain) and -Zbuild-std, into target/dist/build. zig and
# cargo-zigbuild come from PyPI, pinned, into a venv under target/dist/tools/;
# MinGW and Wine are Debian packages (installed as shell/windows.sh installs
# them). The Apple binaries stay unstripped: Debian's rustc has no rust-objcopy to
# strip with, and the zig linker's ad-hoc signature (which arm64 macOS requires)
# must stay intact.
#
# The checks, each failing the run:
#   - every binary: its format and CPU, read from the file (shell/binfmt.py):
#     ELF static, Mach-O thin with its minimum macOS, /usr/lib libraries only and
#     (arm64) a code signature, PE32+ console importing only Windows' own DLLs;
#   - linux-x64: `--version` natively;
#   - linux-arm64: from its packed tarball, on Debian's arm64 kernel under
#     qemu-system-aarch64 (shell/arm64vm.sh): `--version`, an owner SIGKILLed with
#     the whole tree gone in both containment modes, an up/status/release round trip;
#     then the integration test suite, cross-built there for the same target (debug
#     profile, into target/arm64suite), run in the same VM (its own line
#     "arm64vm: suite: P passed, F failed, I ignored, S skipped"; the count below
#     takes the scenarios only);
#   - win32-x64: from its packed tarball, under Wine: `--version`, and an owner
#     killed with the tree gone after it;
#   - the main package lists every platform package at the same version.
# The Apple and win32-arm64 binaries cannot run on this machine: they are checked
# as files only.
#
# Times (this machine kind, 2 cores): see README's install section.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dist=$root/target/dist
tools=$dist/tools
toolchain=$root/target/xcheck/toolchain
say() { printf 'dist [%ss]: %s\n' "$SECONDS" "$*"; }
fail() { printf 'dist: FAILED: %s\n' "$*" >&2; exit 1; }

# The pinned PyPI versions of zig and cargo-zigbuild (bump both together, and
# check the Apple and arm64 builds again when they move).
ZIGLANG=0.17.1
CARGO_ZIGBUILD=0.24.1

platforms=(linux-x64 linux-arm64 darwin-arm64 darwin-x64 win32-x64 win32-arm64)
declare -A rust_target=(
  [linux-x64]=x86_64-unknown-linux-gnu
  [linux-arm64]=aarch64-unknown-linux-musl
  [darwin-arm64]=aarch64-apple-darwin
  [darwin-x64]=x86_64-apple-darwin
  [win32-x64]=x86_64-pc-windows-gnu
  [win32-arm64]=aarch64-pc-windows-gnullvm
)
exe() { case $1 in win32-*) echo ocwrap.exe ;; *) echo ocwrap ;; esac; }

version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
[ -n "$version" ] || fail "no version in Cargo.toml"
for platform in ocwrap "${platforms[@]}"; do
  manifest=npm/$platform/package.json
  [ -f "$manifest" ] || fail "no $manifest"
  [ "$(node -p "require('./$manifest').version")" = "$version" ] \
    || fail "$manifest has another version than Cargo.toml ($version)"
done
for platform in "${platforms[@]}"; do
  [ "$(node -p "require('./npm/ocwrap/package.json').optionalDependencies['@ocwrap/$platform']")" = "$version" ] \
    || fail "npm/ocwrap does not list @ocwrap/$platform@$version as an optional dependency"
done
[ "$(node -p "Object.keys(require('./npm/ocwrap/package.json').optionalDependencies).length")" = ${#platforms[@]} ] \
  || fail "npm/ocwrap lists optional dependencies that are not platform packages"

# --- toolchains -----------------------------------------------------------------------
# MinGW links win32-x64 and Wine runs it: installed as shell/windows.sh installs them.
command -v x86_64-w64-mingw32-gcc >/dev/null && command -v wine >/dev/null \
  || bash shell/windows.sh packages || fail "cannot install MinGW and Wine (shell/windows.sh)"

[ -f "$toolchain/xcheck-packages.txt" ] || bash shell/xcheck.sh --toolchain-only \
  || fail "cannot fetch Debian's Rust toolchain (shell/xcheck.sh)"

venv=$tools/zig
if [ "${DIST_REFRESH:-0}" = 1 ] || [ "$(cat "$venv/pinned.txt" 2>/dev/null)" != "$ZIGLANG $CARGO_ZIGBUILD" ]; then
  say "installing ziglang==$ZIGLANG cargo-zigbuild==$CARGO_ZIGBUILD from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv (is python3-venv there?)"
  "$venv/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIGLANG" "cargo-zigbuild==$CARGO_ZIGBUILD" \
    || fail "pip install of ziglang and cargo-zigbuild"
  echo "$ZIGLANG $CARGO_ZIGBUILD" >"$venv/pinned.txt"
fi

# --- builds ---------------------------------------------------------------------------
# The machine's Rust builds linux-x64 into target/ as README's install command
# does; Debian's Rust builds the rest, in a subshell each so that its environment
# stays there.
build_host() {
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --quiet --release --bin ocwrap \
    --target x86_64-unknown-linux-gnu
  echo "$root/target/x86_64-unknown-linux-gnu/release/ocwrap"
}
build_cross() {
  local platform=$1 target=${rust_target[$1]}
  (
    export RUSTC=$toolchain/usr/bin/rustc
    export LD_LIBRARY_PATH=$toolchain/usr/lib/x86_64-linux-gnu
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_DIR=$dist/build
    export PATH=$venv/bin:$PATH
    local build=(--locked --quiet --release --bin ocwrap -Zbuild-std=std,panic_abort --target "$target")
    case $platform in
    linux-arm64)
      # The build-std sysroot has no self-contained crt objects; zig brings its own.
      RUSTFLAGS="-C link-self-contained=no" cargo-zigbuild zigbuild "${build[@]}" >&2 ;;
    darwin-arm64)
      MACOSX_DEPLOYMENT_TARGET=11.0 cargo-zigbuild zigbuild "${build[@]}" --config profile.release.strip=false >&2 ;;
    darwin-x64)
      MACOSX_DEPLOYMENT_TARGET=10.12 cargo-zigbuild zigbuild "${build[@]}" --config profile.release.strip=false >&2 ;;
    win32-x64)
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc cargo build "${build[@]}" >&2 ;;
    win32-arm64)
      cargo-zigbuild zigbuild "${build[@]}" >&2 ;;
    esac
  ) || return 1
  echo "$dist/build/$target/release/$(exe "$platform")"
}

declare -A built
passed=0
for platform in "${platforms[@]}"; do
  began=$SECONDS
  if [ "$platform" = linux-x64 ]; then
    built[$platform]=$(build_host) || fail "cargo build for $platform"
  else
    built[$platform]=$(build_cross "$platform") || fail "the build for $platform (${rust_target[$platform]})"
  fi
  say "built $platform (${rust_target[$platform]}) in $((SECONDS - began))s: $(du -k "${built[$platform]}" | cut -f1) KiB"
  python3 shell/binfmt.py "$platform" "${built[$platform]}" || fail "$platform is not what its package promises"
  passed=$((passed + 1))
done

# --- stage and pack -------------------------------------------------------------------
rm -rf "$dist/stage" "$dist"/*.tgz
mkdir -p "$dist/stage"
cp -r npm/ocwrap "$dist/stage/ocwrap"
for platform in "${platforms[@]}"; do
  cp -r "npm/$platform" "$dist/stage/$platform"
  install -D -m 0755 "${built[$platform]}" "$dist/stage/$platform/bin/$(exe "$platform")"
done
for package in ocwrap "${platforms[@]}"; do
  (cd "$dist/stage/$package" && npm pack --silent --pack-destination "$dist" >/dev/null) \
    || fail "npm pack of npm/$package"
done
rm -rf "$dist/stage"
tarball() { case $1 in ocwrap) echo "$dist/ocwrap-$version.tgz" ;; *) echo "$dist/ocwrap-$1-$version.tgz" ;; esac; }
for package in ocwrap "${platforms[@]}"; do
  file=$(tarball "$package")
  [ -f "$file" ] || fail "npm pack left no $file"
  say "packed $(basename "$file") ($(du -k "$file" | cut -f1) KiB): $(tar -tzf "$file" | sort | tr '\n' ' ')"
done
for platform in "${platforms[@]}"; do
  listed=$(tar -tzf "$(tarball "$platform")" | sort | tr '\n' ' ')
  [ "$listed" = "package/README.md package/bin/$(exe "$platform") package/package.json " ] \
    || fail "@ocwrap/$platform carries $listed"
done

# --- run what can run here, from the packed tarballs --------------------------------
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
unpack() {
  mkdir -p "$unpacked/$1"
  tar -xzf "$(tarball "$1")" -C "$unpacked/$1"
  local binary=$unpacked/$1/package/bin/$(exe "$1")
  [ -x "$binary" ] || fail "the binary in $(basename "$(tarball "$1")") is not executable"
  echo "$binary"
}

binary=$(unpack linux-x64)
[ "$("$binary" --version)" = "ocwrap $version" ] || fail "linux-x64 --version: $("$binary" --version 2>&1)"
say "linux-x64: --version runs natively"
passed=$((passed + 1))

vm_log=$unpacked/arm64vm.log
bash shell/arm64vm.sh "$(unpack linux-arm64)" "$version" 2>&1 | tee "$vm_log"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "linux-arm64 on the arm64 kernel"
passed=$((passed + $(awk '/on the arm64 kernel: [0-9]+ passed, 0 failed/ { n = $(NF - 3) } END { print n + 0 }' "$vm_log")))

bash shell/windows.sh dist "$(unpack win32-x64)" "$version" || fail "win32-x64 under Wine"
passed=$((passed + 1))

say "ok: $(cd "$dist" && ls ./*.tgz | tr '\n' ' ')in target/dist ($(du -sh "$dist" --exclude=build --exclude=tools | cut -f1)); the Apple and win32-arm64 binaries were checked as files only"
echo "dist: $passed passed, 0 failed"
