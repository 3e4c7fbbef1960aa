#!/usr/bin/env bash
# The npm packages as a user would get them, nothing published: the tarballs that
# shell/dist.sh packed into target/dist/ (the main package and the six platform
# packages), installed into fresh projects with `npm install --offline`, and there:
#   1. the host's install takes @ocwrap/linux-x64 alone, as an optional dependency,
#      and its binary is the one this checkout builds;
#   2. for each platform, `npm install --offline --os=… --cpu=…` (and --libc for
#      Linux) takes exactly that platform's package;
#   3. tsc --noEmit on a usage file against the installed index.d.ts
#      (TypeScript from the npm registry, kept in .npmtools/, git-ignored);
#   4. node --test: the API against the test fixture and the real opencode server
#      (opencode-ai as shell/e2e-opencode.sh installs it into .e2e/), and
#      binaryPath() under each simulated platform and with spoiled packages;
#   5. `npx ocwrap` from the project (shell/npx_check.py), as root and as nobody
#      (a cgroup, and the process group): version, exit codes, Ctrl-C under a
#      terminal, SIGTERM without one, SIGKILL of npm: nothing left;
#   6. the plugin kit (examples/claude-code-plugin/) under a stand-in Claude Code,
#      through `npx --yes ocwrap`, against the real server (shell/claude_kit.py),
#      as root and as nobody;
#   7. README's Level 2 JavaScript (the JS API form), run against the real server
#      by shell/readme-level2.mjs from inside that project.
# Ends with `npm: N passed, M failed` (shell/test.sh adds N to its count) and the
# time each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf 'npm: %s\n' "$*"; }
fail() { printf 'npm: FAILED: %s\n' "$*" >&2; exit 1; }
began=$SECONDS
step_began=$SECONDS
timings=()
step_done() { timings+=("$1 $((SECONDS - step_began))s"); step_began=$SECONDS; }

[ "$(uname -sm)" = "Linux x86_64" ] || fail "the npm checks run on linux-x64, and this is $(uname -sm)"
# The platform packages, as the main package lists them (shell/dist.sh checks that
# list against what it builds).
read -ra platforms < <(node -p "Object.keys(require('./npm/ocwrap/package.json').optionalDependencies).map((p) => p.replace('@ocwrap/', '')).join(' ')")
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
dist=$root/target/dist
tarball() { case $1 in ocwrap) echo "$dist/ocwrap-$version.tgz" ;; *) echo "$dist/ocwrap-$1-$version.tgz" ;; esac; }
for package in ocwrap "${platforms[@]}"; do
  [ -f "$(tarball "$package")" ] || fail "no $(tarball "$package"): run bash shell/dist.sh first"
done

# --- the binaries -----------------------------------------------------------------
say "building the static release binary (as README's install step does) and the fixture"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --quiet --release --bin ocwrap --target x86_64-unknown-linux-gnu
binary=$root/target/x86_64-unknown-linux-gnu/release/ocwrap
cargo build --locked --quiet --bin ocwrap-fixture
fixture=$root/target/debug/ocwrap-fixture
step_done "cargo build"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A fresh project that depends on the main tarball, its optional dependencies
# pointed at the platform tarballs (npm `overrides`): what the registry would serve,
# with the registry never asked.
project_at() {
  mkdir -p "$1"
  node -e '
    const [dir, main, ...platforms] = process.argv.slice(1);
    const overrides = {};
    for (const p of platforms) overrides[p.split("=")[0]] = `file:${p.split("=")[1]}`;
    require("fs").writeFileSync(`${dir}/package.json`, JSON.stringify({
      name: "ocwrap-npm-check", private: true, type: "module",
      dependencies: { ocwrap: `file:${main}` }, overrides,
    }, null, 2));' "$1" "$(tarball ocwrap)" \
    $(for p in "${platforms[@]}"; do printf '@ocwrap/%s=%s ' "$p" "$(tarball "$p")"; done)
}
installed_platforms() {
  (cd "$1/node_modules/@ocwrap" 2>/dev/null && ls) | tr '\n' ' ' | sed 's/ $//'
}

# --- install into a fresh project -----------------------------------------------------
project=$work/project
project_at "$project"
(cd "$project" && npm install --offline --no-audit --no-fund --loglevel=error >/dev/null) \
  || fail "npm install of the tarballs"
[ "$(installed_platforms "$project")" = linux-x64 ] \
  || fail "the host's install took @ocwrap/{$(installed_platforms "$project")}, not linux-x64 alone"
[ "$(node -p "require('$project/package-lock.json').packages['node_modules/@ocwrap/linux-x64'].optional")" = true ] \
  || fail "@ocwrap/linux-x64 is not recorded as an optional dependency"
installed=$project/node_modules/@ocwrap/linux-x64/bin/ocwrap
[ -x "$installed" ] || fail "the installed platform package has no executable bin/ocwrap"
cmp -s "$installed" "$binary" \
  || fail "the packed linux-x64 binary is not the one this checkout builds (run bash shell/dist.sh again)"
cp npm/test/* "$project/"
say "the host's install: @ocwrap/linux-x64 alone, optional, the binary this checkout builds"
step_done "npm install"

# --- each platform's install takes its own package --------------------------------------
selections=0
for platform in "${platforms[@]}"; do
  os=${platform%-*} cpu=${platform#*-}
  libcs=(-)
  [ "$os" != linux ] || libcs=(glibc musl)
  for libc in "${libcs[@]}"; do
    flags=(--os="$os" --cpu="$cpu")
    [ "$libc" = - ] || flags+=(--libc="$libc")
    dir=$work/select-$platform-$libc
    project_at "$dir"
    (cd "$dir" && npm install --offline --no-audit --no-fund --loglevel=error "${flags[@]}" >/dev/null) \
      || fail "npm install --offline ${flags[*]}"
    [ "$(installed_platforms "$dir")" = "$platform" ] \
      || fail "npm install ${flags[*]} took @ocwrap/{$(installed_platforms "$dir")}, not $platform alone"
    selections=$((selections + 1))
    rm -rf "$dir"
  done
done
say "npm install --offline --os/--cpu(/--libc): each of the $selections selections took its platform's package alone"
step_done "platform selection"

# --- types ----------------------------------------------------------------------------
if [ ! -x .npmtools/node_modules/.bin/tsc ]; then
  say "installing typescript from npm into .npmtools/"
  npm install --prefix .npmtools --no-audit --no-fund --loglevel=error typescript@5 >/dev/null \
    || fail "cannot install typescript from npm"
fi
say "tsc $(.npmtools/node_modules/.bin/tsc --version) --noEmit on usage.ts"
.npmtools/node_modules/.bin/tsc -p "$project/tsconfig.json" || fail "index.d.ts does not type-check usage.ts"
step_done "tsc"

# --- node --test ---------------------------------------------------------------------
bash shell/e2e-opencode.sh --install-only
opencode=$root/.e2e/node_modules/.bin/opencode
log=$work/node-test.log
say "node --test: the API against the fixture and against opencode serve"
rc=0
(cd "$project" && env -u OCWRAP_BINARY OCWRAP_FIXTURE="$fixture" OPENCODE_BIN="$opencode" \
  OCWRAP_DIST="$dist" node --test --test-reporter=tap api.test.mjs opencode.test.mjs platforms.test.mjs) > "$log" 2>&1 || rc=$?
passed=$(awk '/^# pass / { print $3 }' "$log")
failed=$(awk '/^# fail / { print $3 }' "$log")
if [ "$rc" -eq 0 ] && [ "${failed:-1}" -eq 0 ] && [ -n "$passed" ]; then
  grep -E '^(not )?ok ' "$log" | sed 's/^/npm:   /'
else
  sed 's/^/npm:   /' "$log"
  fail "node --test: ${failed:-?} failed (exit $rc)"
fi
step_done "node --test"

# A check script run as USER, its output shown; it must exit 0, and its closing
# `TAG: N passed` line adds N to checked_passed.
checked_passed=0
checked_run() {
  local tag=$1 user=$2 log=$work/$1-$2.log rc=0
  "${@:3}" >"$log" 2>&1 || rc=$?
  sed 's/^/npm:   /' "$log"
  [ "$rc" -eq 0 ] || fail "$tag checks as $user (exit $rc)"
  checked_passed=$((checked_passed + $(awk -v tag="$tag:" '$1 == tag && $3 == "passed" && NF == 3 { print $2 }' "$log")))
}

# --- npx ---------------------------------------------------------------------------
say "npx ocwrap from the project"
# As root (the tree in a cgroup), then as nobody (no cgroup to be had: the process
# group), with a HOME, TMPDIR and state dir of nobody's own.
checked_run npx root python3 shell/npx_check.py "$project" "$fixture" "$version" cgroup
chmod 0755 "$work"
mkdir -p "$work/nobody"
chown nobody: "$work/nobody"
checked_run npx nobody setpriv --reuid=nobody --regid=nogroup --init-groups -- \
  env -i PATH="$PATH" HOME="$work/nobody" TMPDIR="$work/nobody" OCWRAP_STATE_DIR="$work/nobody/state" \
  python3 shell/npx_check.py "$project" "$fixture" "$version" group
step_done "npx"

# --- the plugin kit under a stand-in Claude Code ----------------------------------------
say "examples/claude-code-plugin under a stand-in Claude Code, through npx, against opencode serve"
kit_path=$root/.e2e/node_modules/.bin:$PATH
checked_run kit root env PATH="$kit_path" python3 shell/claude_kit.py "$project" "$installed"
mkdir -p "$work/nobody-kit"
chown nobody: "$work/nobody-kit"
chmod o+rx "$project"
checked_run kit nobody setpriv --reuid=nobody --regid=nogroup --init-groups -- \
  env -i PATH="$kit_path" HOME="$work/nobody-kit" TMPDIR="$work/nobody-kit" \
  python3 shell/claude_kit.py "$project" "$installed"
step_done "plugin kit"

# --- README Level 2 with the JS API ---------------------------------------------------
say "README.md Level 2 (JS API) against the real server"
OCWRAP_STATE_DIR=$work/level2-state OPENCODE_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})') \
  PATH="$root/.e2e/node_modules/.bin:$PATH" env -u OCWRAP_BINARY \
  node shell/readme-level2.mjs README.md level-2 "$project" || fail "README Level 2 (JS API)"
# The host's install, each platform selection, the type check, npx's checks and
# the README run.
passed=$((passed + 1 + selections + 1 + checked_passed + 1))
step_done "README Level 2"

say "times: ${timings[*]}; total $((SECONDS - began))s"
echo "npm: $passed passed, $failed failed"
