#!/usr/bin/env bash
# The npm packages, built and installed as a user would get them, nothing
# published: the lean static release binary (README's install build) staged
# into the platform package npm/linux-x64, `npm pack` of it and of the main
# package npm/ocwrap, both tarballs installed into a fresh project, and there:
#   1. tsc --noEmit on a usage file against the installed index.d.ts
#      (TypeScript from the npm registry, kept in .npmtools/, git-ignored);
#   2. node --test: the API against the test fixture and the real opencode server
#      (opencode-ai as shell/e2e-opencode.sh installs it into .e2e/);
#   3. README's Level 2 JavaScript (the JS API form), run against the real server
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

[ "$(uname -sm)" = "Linux x86_64" ] || fail "only linux-x64 is packaged, and this is $(uname -sm)"
target=x86_64-unknown-linux-gnu

# --- the binaries -----------------------------------------------------------------
say "building the static release binary (as README's install step does)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --quiet --release --bin ocwrap --target "$target"
binary=$root/target/$target/release/ocwrap
cargo build --locked --quiet --bin ocwrap-fixture
fixture=$root/target/debug/ocwrap-fixture
ldd "$binary" 2>&1 | grep -Eq 'statically linked|not a dynamic executable' \
  || fail "$binary is not statically linked: $(ldd "$binary" 2>&1)"
step_done "cargo build"

version=$("$binary" --version | awk '{ print $2 }')
for manifest in npm/ocwrap/package.json npm/linux-x64/package.json; do
  [ "$(node -p "require('./$manifest').version")" = "$version" ] \
    || fail "$manifest has another version than the binary ($version)"
done
[ "$(node -p "require('./npm/ocwrap/package.json').optionalDependencies['@ocwrap/linux-x64']")" = "$version" ] \
  || fail "npm/ocwrap does not depend on @ocwrap/linux-x64@$version"

# --- pack ---------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stage" "$work/tarballs" "$work/project"
cp -r npm/ocwrap npm/linux-x64 "$work/stage/"
install -D -m 0755 "$binary" "$work/stage/linux-x64/bin/ocwrap"
for pkg in ocwrap linux-x64; do
  (cd "$work/stage/$pkg" && npm pack --silent --pack-destination "$work/tarballs" >/dev/null) \
    || fail "npm pack of npm/$pkg"
done
for tarball in "$work"/tarballs/*.tgz; do
  say "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB): $(tar -tzf "$tarball" | sort | tr '\n' ' ')"
done
step_done "npm pack"

# --- install into a fresh project -----------------------------------------------------
# --offline: the two tarballs are all it takes; the registry is never asked, so
# the optional dependency must be met by the platform tarball itself.
project=$work/project
printf '{ "name": "ocwrap-npm-check", "private": true, "type": "module" }\n' > "$project/package.json"
(cd "$project" && npm install --offline --no-audit --no-fund --loglevel=error "$work"/tarballs/*.tgz >/dev/null) \
  || fail "npm install of the tarballs"
installed=$project/node_modules/@ocwrap/linux-x64/bin/ocwrap
[ -x "$installed" ] || fail "the installed platform package has no executable bin/ocwrap"
cmp -s "$installed" "$binary" || fail "the installed binary is not the one built"
cp npm/test/* "$project/"
step_done "npm install"

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
  node --test --test-reporter=tap api.test.mjs opencode.test.mjs) > "$log" 2>&1 || rc=$?
passed=$(awk '/^# pass / { print $3 }' "$log")
failed=$(awk '/^# fail / { print $3 }' "$log")
if [ "$rc" -eq 0 ] && [ "${failed:-1}" -eq 0 ] && [ -n "$passed" ]; then
  grep -E '^(not )?ok ' "$log" | sed 's/^/npm:   /'
else
  sed 's/^/npm:   /' "$log"
  fail "node --test: ${failed:-?} failed (exit $rc)"
fi
step_done "node --test"

# --- README Level 2 with the JS API ---------------------------------------------------
say "README.md Level 2 (JS API) against the real server"
OCWRAP_STATE_DIR=$work/level2-state OPENCODE_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})') \
  PATH="$root/.e2e/node_modules/.bin:$PATH" env -u OCWRAP_BINARY \
  node shell/readme-level2.mjs README.md level-2 "$project" || fail "README Level 2 (JS API)"
passed=$((passed + 2))   # the type check and the README run
step_done "README Level 2"

say "times: ${timings[*]}; total $((SECONDS - began))s"
echo "npm: $passed passed, $failed failed"
