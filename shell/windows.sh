#!/usr/bin/env bash
# Builds ocwrap for Windows on this Linux machine and runs its tests under Wine.
#
#   bash shell/windows.sh [all|smoke|check|test]      (default: all)
#
#   smoke  a tiny generated crate (target/windows/smoke) builds for
#          x86_64-pc-windows-gnu and runs under Wine: the toolchain and the prefix work
#   check  type-checks ocwrap for x86_64-pc-windows-gnu and x86_64-pc-windows-msvc
#   test   `cargo test` for x86_64-pc-windows-gnu, each test binary run by Wine
#   all    smoke, check, then test
#
# rustup cannot download targets here, so the compiler is Debian 12's own Rust
# (rustc-web), downloaded and unpacked, never installed, and std is built from its
# source (rust-web-src) with -Zbuild-std: a compiler and a std source of the same
# version. MinGW links; Wine 8 runs. Everything fetched or built lives under
# target/windows/ (toolchain, build, Wine prefix), so a warm run only rebuilds what
# changed. Anything that cannot be installed fails the run, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$PWD/target/windows"
TOOLCHAIN="$ROOT/toolchain"
PREFIX="$ROOT/prefix"
GNU=x86_64-pc-windows-gnu
MSVC=x86_64-pc-windows-msvc
WINESERVER=/usr/lib/wine/wineserver

die() {
    echo "windows.sh: error: $*" >&2
    exit 1
}

step() {
    echo "windows.sh: $* (at ${SECONDS}s)" >&2
}

APT_UPDATED=
apt_update_once() {
    if [[ -z $APT_UPDATED ]]; then
        # Another apt may hold the lock (unattended upgrades): wait for it, bounded.
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
}

installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# The MinGW cross compiler (linker, and dlltool for raw-dylib imports) and Wine.
ensure_host_packages() {
    local missing=() pkg
    for pkg in gcc-mingw-w64-x86-64 wine64 wine; do
        installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        step "installing ${missing[*]}"
        apt_update_once
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${missing[@]}" >&2 ||
            die "cannot install ${missing[*]}"
    fi
    local tool
    for tool in x86_64-w64-mingw32-gcc x86_64-w64-mingw32-dlltool wine "$WINESERVER"; do
        command -v "$tool" >/dev/null || die "$tool is missing after installing its package"
    done
}

# The single dependency of $1 (at version $2) whose name matches the regex $3.
dependency_of() {
    local found
    found=$(apt-cache depends "$1=$2" | sed -nE "s/^ *Depends: ($3)\$/\1/p" | sort -u)
    [[ -n $found && $(wc -l <<<"$found") -eq 1 ]] ||
        die "expected one dependency of $1=$2 matching '$3', found: '${found:-none}'"
    echo "$found"
}

# Debian's rustc, its std (host libraries, for build scripts and proc macros), the
# std source, and the LLVM it links, unpacked into $TOOLCHAIN. The versioned package
# names move with security updates, so they are looked up, never assumed.
ensure_toolchain() {
    if [[ -f $TOOLCHAIN/.complete ]]; then
        return
    fi
    step "fetching Debian's Rust toolchain"
    apt_update_once
    local version std llvm src_version llvm_version
    version=$(apt-cache policy rustc-web | sed -nE 's/^ *Candidate: (.+)$/\1/p')
    [[ -n $version && $version != "(none)" ]] || die "apt has no rustc-web"
    std=$(dependency_of libstd-rust-web-dev "$version" 'libstd-rust-web-1\.[0-9]+')
    llvm=$(dependency_of "$std" "$version" 'libllvm[0-9]+')
    src_version=$(apt-cache policy rust-web-src | sed -nE 's/^ *Candidate: (.+)$/\1/p')
    [[ $src_version == "$version" ]] ||
        die "rust-web-src $src_version does not match rustc-web $version"
    llvm_version=$(apt-cache policy "$llvm" | sed -nE 's/^ *Candidate: (.+)$/\1/p')
    [[ -n $llvm_version && $llvm_version != "(none)" ]] || die "apt has no $llvm"
    local packages=(
        "rustc-web=$version" "libstd-rust-web-dev=$version" "$std=$version"
        "rust-web-src=$version" "$llvm=$llvm_version"
    )
    local debs="$ROOT/debs"
    rm -rf "$debs" "$TOOLCHAIN.partial"
    mkdir -p "$debs" "$TOOLCHAIN.partial"
    # apt drops privileges to _apt for downloads; that user cannot write under
    # target/, which apt only warns about. Downloads land in $debs either way.
    (cd "$debs" && apt-get download -q "${packages[@]}" >&2) ||
        die "cannot download ${packages[*]}"
    local deb
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$TOOLCHAIN.partial" || die "cannot unpack $deb"
    done
    rm -rf "$debs" "$TOOLCHAIN"
    printf '%s\n' "${packages[@]}" >"$TOOLCHAIN.partial/.complete"
    mv "$TOOLCHAIN.partial" "$TOOLCHAIN"
}

# Points cargo at the unpacked compiler. RUSTC_BOOTSTRAP lets this stable compiler
# and cargo take -Zbuild-std; the build gets its own target dir because its host
# artifacts come from another compiler than the Linux build's.
toolchain_env() {
    export RUSTC="$TOOLCHAIN/usr/bin/rustc"
    export RUSTDOC="$TOOLCHAIN/usr/bin/rustdoc"
    export LD_LIBRARY_PATH="$TOOLCHAIN/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_DIR="$ROOT/build"
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
    "$RUSTC" -vV >/dev/null || die "the unpacked rustc does not run"
    [[ -f $("$RUSTC" --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock ]] ||
        die "the std source is missing from $TOOLCHAIN"
}

wine_env() {
    export WINEPREFIX="$PREFIX"
    export WINEDEBUG=-all
    # No display here: Wine must not try to open windows.
    unset DISPLAY WAYLAND_DISPLAY
}

# The Wine prefix, made once, and the ProcessPrng stand-in in its system32 (rebuilt
# when its source changes).
ensure_prefix() {
    wine_env
    if [[ ! -f $PREFIX/.complete ]]; then
        step "creating the Wine prefix"
        rm -rf "$PREFIX"
        mkdir -p "$PREFIX"
        # Empty overrides for mscoree/mshtml: wineboot would otherwise offer to
        # download Mono and Gecko, which nothing here needs.
        WINEDLLOVERRIDES="mscoree,mshtml=" wine wineboot -i >&2 || die "wineboot failed"
        "$WINESERVER" -w
        touch "$PREFIX/.complete"
    fi
    local source=shell/windows/processprng.c
    local dll="$PREFIX/drive_c/windows/system32/bcryptprimitives.dll"
    if [[ ! -f $dll || $source -nt $dll ]]; then
        step "building the ProcessPrng stand-in"
        x86_64-w64-mingw32-gcc -O2 -shared -s -o "$dll.new" "$source" -ladvapi32 ||
            die "cannot build $source"
        mv "$dll.new" "$dll"
    fi
    # Wine 8 has no builtin bcryptprimitives.dll, so the native one in system32 is
    # the only candidate. A later Wine that ships one would load its builtin first:
    # prefer ours explicitly so that the run does not silently depend on which.
    export WINEDLLOVERRIDES="bcryptprimitives=n${WINEDLLOVERRIDES:+;$WINEDLLOVERRIDES}"
}

# A crate generated under target/ (never committed): if it builds, runs and passes
# its test under Wine, the toolchain, the linker and the prefix all work.
smoke() {
    step "smoke test"
    local crate="$ROOT/smoke"
    mkdir -p "$crate/src"
    cat >"$crate/Cargo.toml" <<'EOF'
[package]
name = "smoke"
version = "0.0.0"
edition = "2024"

[workspace]
EOF
    cat >"$crate/src/main.rs" <<'EOF'
// A HashMap draws its keys from ProcessPrng, so this also exercises the stand-in.
fn greeting() -> String {
    let mut words = std::collections::HashMap::new();
    words.insert(1, "windows");
    format!("smoke: hello from {} (pid {})", words[&1], std::process::id())
}

fn main() {
    println!("{}", greeting());
}

#[test]
fn greets() {
    assert!(greeting().contains("windows"));
}
EOF
    (cd "$crate" && cargo build -q -Zbuild-std --target "$GNU") || die "smoke build failed"
    local out
    out=$(wine "$CARGO_TARGET_DIR/$GNU/debug/smoke.exe") || die "smoke.exe failed under Wine"
    echo "$out"
    [[ $out == "smoke: hello from windows"* ]] || die "smoke.exe printed '$out'"
    (cd "$crate" && cargo test -q -Zbuild-std --target "$GNU") || die "smoke test failed"
}

check() {
    step "type-checking for $GNU and $MSVC"
    # A target dir of its own: with -Zbuild-std, std checked and std built share
    # fingerprints, and each would rebuild the other on every run (~35 s each).
    CARGO_TARGET_DIR="$ROOT/check" cargo check --all-targets -Zbuild-std --target "$GNU"
    CARGO_TARGET_DIR="$ROOT/check" cargo check --all-targets -Zbuild-std --target "$MSVC"
}

run_tests() {
    step "testing for $GNU under Wine"
    cargo test -Zbuild-std --target "$GNU"
    kill9_scenario
}

# `kill -9` of ocwrap's own Linux process: a way to die that only Wine has (no
# Windows program can cause it), so it is checked from here. The tree (the fixture
# and its grandchild) must go with it: the wineserver closes the dead process's
# handles, the job's last one among them, and the job kills what is in it.
kill9_scenario() {
    step "kill -9 of ocwrap's Linux process under Wine"
    local exe="$CARGO_TARGET_DIR/$GNU/debug" state='C:\ocwrap-kill9'
    local work="$ROOT/kill9"
    rm -rf "$work" "$PREFIX/drive_c/ocwrap-kill9"
    mkdir -p "$work"
    # `wine` execs into the program: $! is ocwrap's own Linux process.
    wine "$exe/ocwrap.exe" --state-dir "$state" --owner none -- \
        "$exe/ocwrap-fixture.exe" tree --children 1 >"$work/out" 2>"$work/err" </dev/null &
    local ocwrap=$! waited=0
    until grep -qx ready "$work/out"; do
        ((waited++ < 600)) || die "the fixture was not ready within 60 s: $(cat "$work/out" "$work/err")"
        sleep 0.1
    done
    local server child
    server=$(awk '$1 == "server" { print $2 }' "$work/out")
    child=$(awk '$1 == "child" { print $2 }' "$work/out")
    # PIDs with their start times, taken while the tree runs: Wine reuses PIDs.
    local tree
    tree=$(wine "$exe/ocwrap-fixture.exe" identify "$server" "$child" </dev/null |
        awk '$2 != "gone" { printf "%s:%s ", $1, $2 }')
    [[ $(wc -w <<<"$tree") -eq 2 ]] || die "the server and its grandchild do not both run: '$tree'"
    kill -9 "$ocwrap"
    { wait "$ocwrap"; } 2>/dev/null || true
    local verdict
    # shellcheck disable=SC2086 # one word per process
    verdict=$(wine "$exe/ocwrap-fixture.exe" wait-gone $tree --within 20 </dev/null) ||
        die "after kill -9 of ocwrap, still running: $verdict"
    echo "windows.sh: kill -9 of ocwrap (Linux pid $ocwrap): server and grandchild ($tree) $verdict" >&2
    rm -rf "$work" "$PREFIX/drive_c/ocwrap-kill9"
}

main() {
    local what=${1:-all}
    case $what in
    all | smoke | check | test) ;;
    *) die "usage: bash shell/windows.sh [all|smoke|check|test]" ;;
    esac
    ensure_host_packages
    ensure_toolchain
    toolchain_env
    ensure_prefix
    # End whatever a test left running in our prefix (and only there).
    trap '"$WINESERVER" -k 2>/dev/null || true' EXIT
    case $what in
    smoke) smoke ;;
    check) check ;;
    test) run_tests ;;
    all)
        # Separate statements: `set -e` does not apply inside a function called
        # as part of an `&&` list.
        smoke
        check
        run_tests
        ;;
    esac
    step "done; target/windows holds $(du -sh "$ROOT" | cut -f1)"
}

main "$@"
