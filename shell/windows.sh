#!/usr/bin/env bash
# Builds ocwrap for Windows on this Linux machine and runs its tests under Wine.
#
#   bash shell/windows.sh [all|smoke|check|test]      (default: all)
#
#   check  type-checks and lints ocwrap for x86_64-pc-windows-gnu and
#          x86_64-pc-windows-msvc (shell/xcheck.sh with those targets)
#   smoke  a tiny generated crate (target/windows/smoke) builds for
#          x86_64-pc-windows-gnu and runs under Wine: the toolchain and the prefix
#          work (a diagnosis when `test` fails to build or to start anything)
#   test   `cargo test` for x86_64-pc-windows-gnu, each test binary run by Wine (the
#          unit tests and the shared integration suite, tests/ocwrap.rs), then
#          `kill -9` of ocwrap's Linux process checked from the shell
#   all    check, then test
#   packages
#          installs MinGW and Wine (what shell/dist.sh needs before it builds)
#   dist BINARY VERSION
#          the packed win32-x64 binary (shell/dist.sh unpacks it from its
#          tarball): `--version` prints VERSION, and with an owner that is killed,
#          the tree (the fixture and its grandchild) is gone after it and ocwrap
#          has exited
#
# rustup cannot download targets here, so the compiler is Debian 12's own Rust
# (rustc-web), downloaded and unpacked, never installed, and std is built from its
# source (rust-web-src) with -Zbuild-std: a compiler and a std source of the same
# version. It is the toolchain shell/xcheck.sh fetches and caches under
# target/xcheck/toolchain (fetched here through it when missing). MinGW links;
# Wine 8 runs. What is built here lives under target/windows/ (the build and the
# Wine prefix), so a warm run only rebuilds what changed. Anything that cannot be
# installed fails the run, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$PWD/target/windows"
TOOLCHAIN="$PWD/target/xcheck/toolchain"
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

# The toolchain shell/xcheck.sh caches; fetched (and both Windows targets checked)
# through it when it is not there yet.
ensure_toolchain() {
    if [[ ! -f $TOOLCHAIN/xcheck-packages.txt ]]; then
        check
    fi
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
    # A target dir of its own: a std built for another crate in ocwrap's target dir
    # would make the next ocwrap build rebuild std (and this one the same).
    export CARGO_TARGET_DIR="$ROOT/smoke-build"
    (cd "$crate" && cargo build -q -Zbuild-std --target "$GNU") || die "smoke build failed"
    local out
    out=$(wine "$CARGO_TARGET_DIR/$GNU/debug/smoke.exe") || die "smoke.exe failed under Wine"
    echo "$out"
    [[ $out == "smoke: hello from windows"* ]] || die "smoke.exe printed '$out'"
    (cd "$crate" && cargo test -q -Zbuild-std --target "$GNU") || die "smoke test failed"
}

check() {
    step "type-checking and linting for $GNU and $MSVC (shell/xcheck.sh)"
    bash shell/xcheck.sh "$GNU" "$MSVC" || die "the Windows type-check failed"
}

run_tests() {
    step "testing for $GNU under Wine"
    cargo test -Zbuild-std --target "$GNU"
    kill9_scenario
}

# Waits for a line matching PATTERN in FILE, at most 60 s.
await_line() {
    local waited=0
    until grep -qE "$2" "$1"; do
        ((waited++ < 600)) || die "no '$2' in $1 within 60 s: $(cat "$1")"
        sleep 0.1
    done
}

# The fixture's tree (`tree --children 1`, printing into DIR/out) once it is ready:
# its server and grandchild as PID:START words, taken while they run, as Wine
# reuses PIDs.
fixture_tree() {
    local fixture=$1 work=$2
    await_line "$work/out" '^ready'
    local server child tree
    server=$(awk '$1 == "server" { print $2 }' "$work/out")
    child=$(awk '$1 == "child" { print $2 }' "$work/out")
    tree=$(wine "$fixture" identify "$server" "$child" </dev/null | tr -d '\r' |
        awk '$2 != "gone" { printf "%s:%s ", $1, $2 }')
    [[ $(wc -w <<<"$tree") -eq 2 ]] || die "the server and its grandchild do not both run: '$tree'"
    echo "$tree"
}

# Waits until the tree is gone (at most 20 s) and prints the fixture's verdict;
# WHAT says after what, when it is not.
tree_gone() {
    local verdict
    # shellcheck disable=SC2086 # one word per process
    verdict=$(wine "$1" wait-gone $2 --within 20 </dev/null | tr -d '\r') ||
        die "$3, still running: $verdict"
    echo "$verdict"
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
    local ocwrap=$! tree verdict
    tree=$(fixture_tree "$exe/ocwrap-fixture.exe" "$work")
    kill -9 "$ocwrap"
    { wait "$ocwrap"; } 2>/dev/null || true
    verdict=$(tree_gone "$exe/ocwrap-fixture.exe" "$tree" "after kill -9 of ocwrap")
    echo "windows.sh: kill -9 of ocwrap (Linux pid $ocwrap): server and grandchild ($tree) $verdict" >&2
    rm -rf "$work" "$PREFIX/drive_c/ocwrap-kill9"
}

# The packed binary under Wine: its version, and an owner's end tearing the tree
# down. The owner is a Windows process (the fixture's `sleep`) killed from Linux;
# the fixture is the test build's (the server is not what is checked here).
dist_scenario() {
    local binary=$1 version=$2
    step "win32-x64 from its package under Wine: $binary"
    local said
    said=$(wine "$binary" --version </dev/null | tr -d '\r') || die "$binary --version failed under Wine"
    [[ $said == "ocwrap $version" ]] || die "$binary --version printed '$said', not 'ocwrap $version'"
    cargo build -q -Zbuild-std --target "$GNU" --bin ocwrap-fixture || die "cannot build the fixture"
    local fixture="$CARGO_TARGET_DIR/$GNU/debug/ocwrap-fixture.exe" work="$ROOT/dist"
    rm -rf "$work" "$PREFIX/drive_c/ocwrap-dist"
    mkdir -p "$work"
    wine "$fixture" sleep >"$work/owner" 2>&1 </dev/null &
    local owner_process=$!
    await_line "$work/owner" '^sleeper [0-9]+'
    local owner
    owner=$(awk '$1 == "sleeper" { print $2 }' "$work/owner" | tr -d '\r')
    wine "$binary" --state-dir 'C:\ocwrap-dist' --owner-pid "$owner" -- \
        "$fixture" tree --children 1 >"$work/out" 2>"$work/err" </dev/null &
    local ocwrap=$! tree verdict
    tree=$(fixture_tree "$fixture" "$work")
    kill -9 "$owner_process"
    { wait "$owner_process"; } 2>/dev/null || true
    verdict=$(tree_gone "$fixture" "$tree" "after the owner was killed")
    local waited=0
    while kill -0 "$ocwrap" 2>/dev/null; do
        ((waited++ < 200)) || die "ocwrap still runs 20 s after its owner was killed: $(cat "$work/err")"
        sleep 0.1
    done
    local rc=0
    wait "$ocwrap" || rc=$?
    echo "windows.sh: win32-x64 package: $said; owner $owner killed, server and grandchild ($tree) $verdict, ocwrap exited $rc" >&2
    rm -rf "$work" "$PREFIX/drive_c/ocwrap-dist"
}

main() {
    local what=${1:-all}
    case $what in
    all | smoke | check | test) ;;
    packages)
        ensure_host_packages
        return
        ;;
    dist) [[ $# -eq 3 ]] || die "usage: bash shell/windows.sh dist BINARY VERSION" ;;
    *) die "usage: bash shell/windows.sh [all|smoke|check|test|packages|dist BINARY VERSION]" ;;
    esac
    if [[ $what == check ]]; then
        check
        return
    fi
    ensure_host_packages
    if [[ $what == all ]]; then
        check
    else
        ensure_toolchain
    fi
    toolchain_env
    ensure_prefix
    # End whatever a test left running in our prefix (and only there).
    trap '"$WINESERVER" -k 2>/dev/null || true' EXIT
    case $what in
    smoke) smoke ;;
    dist) dist_scenario "$2" "$3" ;;
    test) run_tests ;;
    all) run_tests ;;
    esac
    step "done; target/windows holds $(du -sh "$ROOT" | cut -f1)"
}

main "$@"
