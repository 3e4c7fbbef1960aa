#!/usr/bin/env bash
# End-to-end against the real server: `opencode serve` from the npm package
# opencode-ai, installed into .e2e/ (git-ignored) when missing. Fails loudly if it
# cannot be installed: nothing here is skipped.
#
#   1. `ocwrap up` through the npm wrapper (npm exec → sh → opencode), a session
#      created over the HTTP API, then the owner SIGKILLed: every process of the
#      tree is gone and the port is free.
#   2. In the foreground, `ocwrap -- opencode serve …`, SIGINT to ocwrap: the same.
#   3. README's "Level 2" JavaScript in its no-npm form (execFile), extracted from
#      README.md and run by node against the real server (shell/readme-level2.mjs;
#      shell/npm.sh runs the JS API form).
#
# `--install-only` installs opencode-ai and stops (shell/npm.sh reuses it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
e2e=$root/.e2e

say() { printf 'e2e: %s\n' "$*"; }
fail() { printf 'e2e: FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -x "$e2e/node_modules/.bin/opencode" ]; then
  say "installing opencode-ai from npm into .e2e/"
  mkdir -p "$e2e"
  npm install --prefix "$e2e" --no-audit --no-fund --loglevel=error opencode-ai >/dev/null \
    || fail "cannot install opencode-ai from npm"
fi
[ -x "$e2e/node_modules/.bin/opencode" ] || fail "opencode-ai installed no opencode binary"
say "opencode $("$e2e/node_modules/.bin/opencode" --version 2>/dev/null || echo '?')"
[ "${1:-}" != --install-only ] || exit 0

cargo build --locked --quiet
bin=$root/target/debug
export OCWRAP_STATE_DIR
OCWRAP_STATE_DIR=$(mktemp -d)/state
# The npm entry as a plugin would start it: a wrapper process that starts the binary.
opencode_via_npm=(npm --prefix "$e2e" exec --offline --loglevel=error -- opencode)

# The processes of the scenario under way; emptied once a scenario saw them gone,
# so that the clean-up never signals a PID that may have been reused since.
ours=()
cleanup() {
  local pid
  "$bin/ocwrap" stop --all --wait >/dev/null 2>&1 || true
  for pid in "${ours[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  "$bin/ocwrap" gc >/dev/null 2>&1 || true
  rm -rf "${OCWRAP_STATE_DIR%/state}"
}
trap cleanup EXIT

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

json_field() { # JSON FIELD
  node -e 'const v=JSON.parse(process.argv[1])[process.argv[2]]; console.log(v===null||v===undefined?"":v)' "$1" "$2"
}

# Every descendant of PID (not PID itself), from one ps snapshot.
descendants() {
  ps -eo pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      seen[root] = 1; grew = 1
      while (grew) { grew = 0; for (p in parent) if (!(p in seen) && (parent[p] in seen)) { seen[p] = 1; grew = 1 } }
      for (p in seen) if (p != root) print p
    }'
}

alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

wait_gone() { # WHAT PID...
  local what=$1 pid deadline=$((SECONDS + 30)); shift
  for pid in "$@"; do
    while alive "$pid"; do
      [ $SECONDS -lt $deadline ] || fail "$what: pid $pid ($(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)) still runs after 30 s"
      sleep 0.05
    done
  done
}

port_free() { ! node -e 'const c=require("net").connect(+process.argv[1],"127.0.0.1");c.on("connect",()=>process.exit(0));c.on("error",()=>process.exit(1))' "$1"; }

wait_healthy() { # PORT
  node -e '
    const url = `http://127.0.0.1:${process.argv[1]}/global/health`, until = Date.now() + 60000;
    (async () => {
      while (Date.now() < until) {
        try { const r = await fetch(url, { signal: AbortSignal.timeout(1000) }); if (r.ok) return; } catch {}
        await new Promise((ok) => setTimeout(ok, 100));
      }
      console.error(`not healthy within 60 s: ${url}`); process.exit(1);
    })();' "$1" || fail "the server on port $1 never became healthy"
}

show_tree() { # PID...
  ps -o pid=,ppid=,pgid=,args= -p "$(IFS=,; echo "$*")" | sed 's/^/e2e:   /'
}

# --- 1. up, a session over HTTP, owner SIGKILLed -------------------------------
say "1. ocwrap up through the npm wrapper, then SIGKILL of the owner"
sleep 1000 & owner=$!; ours+=("$owner")
port=$(free_port)
out=$("$bin/ocwrap" up --json --owner-pid "$owner" --port "$port" --health /global/health \
  --ready-timeout 90s --grace 2s -- "${opencode_via_npm[@]}" serve --hostname 127.0.0.1 --port "$port") \
  || fail "up failed: $out"
say "up: $out"
[ "$(json_field "$out" status)" = started ] || fail "expected status started"
supervisor=$(json_field "$out" supervisor_pid)
url=$(json_field "$out" url)
ours+=("$supervisor")
session=$(node -e '
  fetch(`${process.argv[1]}/session`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })
    .then((r) => r.json()).then((s) => console.log(s.id ?? ""))' "$url")
[[ $session == ses_* ]] || fail "no session created over the HTTP API (got '$session')"
say "session $session created"
tree=($(descendants "$supervisor"))
ours+=("${tree[@]}")
show_tree "$supervisor" "${tree[@]}"
ps -o args= -p "$(IFS=,; echo "${tree[*]}")" | grep -q '^npm exec' || fail "the npm wrapper is not in the tree"
ps -o args= -p "$(IFS=,; echo "${tree[*]}")" | grep -q '^opencode serve' || fail "the real binary is not in the tree"
kill -KILL "$owner"; wait "$owner" 2>/dev/null || true
wait_gone "after the owner's SIGKILL" "$supervisor" "${tree[@]}"
port_free "$port" || fail "port $port still answers"
say "1. ok: ${#tree[@]} processes and the supervisor gone, port $port free"
ours=()

# --- 2. foreground run, SIGINT ---------------------------------------------------
say "2. ocwrap -- opencode serve in the foreground, then SIGINT"
port=$(free_port)
"$bin/ocwrap" --owner none --grace 2s -- "${opencode_via_npm[@]}" serve --hostname 127.0.0.1 --port "$port" \
  > "$OCWRAP_STATE_DIR/../foreground.log" 2>&1 &
supervisor=$!; ours+=("$supervisor")
wait_healthy "$port"
tree=($(descendants "$supervisor"))
ours+=("${tree[@]}")
show_tree "$supervisor" "${tree[@]}"
kill -INT "$supervisor"
rc=0; wait "$supervisor" || rc=$?
wait_gone "after SIGINT to ocwrap" "${tree[@]}"
# The server's own status (0, or 128+n for the signal it died of), never ocwrap's
# own failure (125-127).
[ "$rc" -lt 125 ] || [ "$rc" -ge 128 ] || fail "ocwrap exited $rc after SIGINT: $(cat "$OCWRAP_STATE_DIR/../foreground.log")"
port_free "$port" || fail "port $port still answers"
say "2. ok: ocwrap exited $rc; ${#tree[@]} processes gone, port $port free"
ours=()

# --- 3. README Level 2, run by node ---------------------------------------------
say "3. README.md Level 2 JavaScript (no-npm form) against the real server"
PATH="$bin:$e2e/node_modules/.bin:$PATH" OPENCODE_PORT=$(free_port) node shell/readme-level2.mjs README.md level-2-raw \
  || fail "README Level 2"
say "3. ok"
say "all scenarios passed"
