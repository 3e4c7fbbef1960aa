#!/bin/busybox sh
# PID 1 of the arm64 VM that shell/arm64vm.sh boots: checks the linux-arm64 ocwrap
# binary (/ocwrap) on a real arm64 Linux kernel, with busybox for everything else.
# Then, when /suite holds it, runs the integration test suite (part 4 below).
# Every line it prints for the host starts with "arm64vm:"; the scenarios' count is
# "arm64vm: N passed, M failed", the suite's "arm64vm: suite: P passed, F failed,
# I ignored, S skipped". The host reads them from the serial console.
# Each wait is bounded (a deadline and a message), and the VM powers off at the end
# whatever happened, so the host's run never hangs on it.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
export PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp TMPDIR=/tmp

passed=0
failed=0
say() { echo "arm64vm: $*"; }
pass() { passed=$((passed + 1)); say "ok: $*"; }
fail() { failed=$((failed + 1)); say "FAILED: $*"; }

# Whether PID runs (a zombie does not: it has ended and waits to be reaped).
runs() {
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ]
}

# Waits until FILE holds a line, at most 30 s; says which file did not come.
await_file() {
  n=0
  until [ -s "$1" ]; do
    n=$((n + 1))
    [ $n -le 300 ] || { say "no $1 within 30 s"; return 1; }
    sleep 0.1
  done
}

# Waits until none of the PIDs runs, at most $1 tenths of a second.
await_gone() {
  limit=$1
  shift
  n=0
  for pid in "$@"; do
    while runs "$pid"; do
      n=$((n + 1))
      [ $n -le "$limit" ] || { say "pid $pid still runs"; return 1; }
      sleep 0.1
    done
  done
}

say "kernel $(uname -r) $(uname -m)"

# 1. --version prints the package's version.
version=$(/ocwrap --version 2>&1)
if [ "$version" = "ocwrap $(cat /version)" ]; then pass "--version: $version"; else fail "--version printed '$version', not 'ocwrap $(cat /version)'"; fi

# 2. The owner is SIGKILLed: the whole tree goes, a setsid escapee included; ocwrap
#    exits after it. owner_killed LABEL UID DIR OCWRAP-OPTION…: the owner and
#    ocwrap run as UID (0: root), the tree writes its PIDs into DIR.
owner_killed() {
  label=$1 uid=$2 dir=$3
  shift 3
  run=""
  [ "$uid" -eq 0 ] || run="asuser $uid"
  mkdir -p "$dir"
  chown "$uid:$uid" "$dir"
  rm -f "$dir/server" "$dir/escapee"
  $run sleep 1000 &
  owner=$!
  $run env HOME="$dir" TMPDIR="$dir" /ocwrap "$@" --grace 1s --owner-pid "$owner" -- \
    sh -c "echo \$\$ > $dir/server; setsid sh -c 'echo \$\$ > $dir/escapee; exec sleep 1001' & exec sleep 1002" \
    2>"$dir/err" &
  ocwrap=$!
  if await_file "$dir/server" && await_file "$dir/escapee"; then
    server=$(cat "$dir/server") escapee=$(cat "$dir/escapee")
    ran_as=$(awk '$1 == "Uid:" { print $2 }' "/proc/$server/status")
    if runs "$server" && runs "$escapee" && [ "$ran_as" = "$uid" ]; then
      kill -9 "$owner"
      if await_gone 100 "$server" "$escapee" "$ocwrap"; then
        pass "$label: owner SIGKILLed, server $server and setsid escapee $escapee gone, ocwrap exited"
      else
        fail "$label: after the owner's SIGKILL something still runs"
      fi
    else
      fail "$label: the tree did not start as uid $uid (server as '$ran_as')"
    fi
  else
    fail "$label: the tree did not start; ocwrap said: $(cat "$dir/err")"
  fi
  wait "$ocwrap" 2>/dev/null
  kill -9 "$owner" 2>/dev/null
  wait "$owner" 2>/dev/null
}
owner_killed "--contain cgroup" 0 /tmp/root-cgroup --contain cgroup
owner_killed "--contain group" 0 /tmp/root-group --contain group
# As nobody no cgroup can be had: --contain auto falls back to the process group.
owner_killed "as nobody, --watch-method poll" 65534 /tmp/nobody --watch-method poll

left=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -name 'ocwrap-*' | wc -l)
if [ "$left" -eq 0 ]; then pass "no ocwrap cgroup left"; else fail "$left ocwrap cgroups left"; fi

# 3. up / release: a shared server on a loopback port is started for one owner,
#    found by status, and torn down when that owner's lease is released.
mkdir -p /tmp/www
echo hello > /tmp/www/index.html
sleep 1000 &
owner=$!
port=4096
up=$(/ocwrap up --json --state-dir /run/ocwrap --port "$port" --owner-pid "$owner" -- \
  httpd -f -p "127.0.0.1:$port" -h /tmp/www 2>&1)
# The server leads its own group: its PID is the one given with its pgid.
server=$(echo "$up" | sed -n 's/.*"pid":\([0-9]*\),"pgid".*/\1/p')
supervisor=$(echo "$up" | sed -n 's/.*"supervisor_pid":\([0-9]*\).*/\1/p')
case $up in
*'"status":"started"'*) pass "up: started (server $server)" ;;
*) fail "up answered: $up" ;;
esac
if [ "$(wget -q -O - "http://127.0.0.1:$port/" 2>/dev/null)" = hello ]; then pass "the server answers on 127.0.0.1:$port"; else fail "the server does not answer on 127.0.0.1:$port"; fi
status=$(/ocwrap status --json --state-dir /run/ocwrap 2>&1)
case $status in
*'"state":"ready"'*) pass "status: ready" ;;
*) fail "status answered: $status" ;;
esac
released=$(/ocwrap release --state-dir /run/ocwrap --port "$port" --owner-pid "$owner" 2>&1)
if [ -n "$server" ] && [ -n "$supervisor" ] && await_gone 100 "$server" "$supervisor"; then
  pass "release: server $server and its supervisor $supervisor gone ($released)"
else
  fail "release: the server still runs ($released)"
fi
kill -9 "$owner"
wait "$owner" 2>/dev/null

say "$passed passed, $failed failed"

# 4. The integration suite (when shell/arm64vm.sh packed it under /suite): the test
#    binary with the same build's ocwrap and ocwrap-fixture, at most the seconds in
#    /suite/limit, its arguments from /suite/args (one a line). Its output
#    goes to a file, not a pipe: a server a broken test leaves running must not
#    hold the report back. Then: its result line, each failing test by name, and
#    the line "arm64vm: suite: P passed, F failed, I ignored, S skipped".
if [ -x /suite/ocwrap-suite ]; then
  set --
  while IFS= read -r arg; do set -- "$@" "$arg"; done </suite/args
  limit=$(cat /suite/limit)
  # Every skipped name must still be a test: a renamed test would otherwise run
  # here unnoticed, or a stale name hide nothing.
  /suite/ocwrap-suite --list --format terse 2>/dev/null | sed -n 's/: test$//p' >/tmp/suite.tests
  stale=0 skipped=0
  while IFS= read -r name; do
    if grep -qxF "$name" /tmp/suite.tests; then
      skipped=$((skipped + 1))
    else
      say "suite: the skipped $name is no test"
      stale=$((stale + 1))
    fi
  done </suite/skip
  say "suite: $(grep -c . /tmp/suite.tests) tests, $skipped skipped, at most ${limit}s: ocwrap-suite $*"
  began=$(date +%s)
  # /suite/sh: bash as the suite's `sh` (see shell/arm64vm.sh); busybox for the rest.
  (cd /tmp && PATH=/suite/sh:$PATH SUITE_BIN_DIR=/suite RUST_BACKTRACE=1 RUSTC_BOOTSTRAP=1 timeout "$limit" /suite/ocwrap-suite "$@" \
    >/tmp/suite.log 2>&1 </dev/null)
  code=$?
  took=$(($(date +%s) - began))
  # The whole output for the host's log, marked so that none of it reads as a
  # report line.
  sed 's/^/suite| /' /tmp/suite.log
  sed -n 's/^test \(.*\) \.\.\. FAILED\( <.*>\)\{0,1\}$/\1/p' /tmp/suite.log | while IFS= read -r name; do
    say "suite: FAILED: $name"
  done
  result=$(grep '^test result:' /tmp/suite.log | tail -n1)
  if [ -n "$result" ]; then
    say "suite: $result (exit $code)"
    set -- $(echo "$result" | sed 's/.* \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/')
    spassed=$1 sfailed=$2 signored=$3
  else
    say "suite: no result after ${took}s (exit $code; $limit s is its bound); tests running for over 60 s then:"
    grep 'has been running for over' /tmp/suite.log | sed 's/^/arm64vm: suite:   /'
    spassed=$(grep -c '^test .* \.\.\. ok' /tmp/suite.log)
    sfailed=$(($(grep -c '^test .* \.\.\. FAILED' /tmp/suite.log) + 1))
    signored=$(grep -c '^test .* \.\.\. ignored' /tmp/suite.log)
  fi
  sfailed=$((sfailed + stale))
  left=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -name 'ocwrap-*' | wc -l)
  if [ "$left" -ne 0 ]; then
    say "suite: $left ocwrap cgroups left: $(find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -name 'ocwrap-*' | tr '\n' ' ')"
    sfailed=$((sfailed + 1))
  fi
  say "suite: $spassed passed, $sfailed failed, $signored ignored, $skipped skipped in ${took}s"
fi
sync
poweroff -f
