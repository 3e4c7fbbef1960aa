#!/bin/sh
# Run by Claude Code for SessionStart and SessionEnd (hooks.json), with the hook's
# JSON on stdin, which `ocwrap hook` reads: SessionStart starts `opencode serve` or
# attaches to the one that runs, leased to this session's process; SessionEnd drops
# that lease unless the session goes on (/clear, resume). No JavaScript and no
# `npm install`: ocwrap is the one on PATH, else npx fetches the package and its
# platform binary on first use. OPENCODE_PORT chooses the port (default 4096).
port=${OPENCODE_PORT:-4096}
set -- hook --port "$port" --health /global/health --cwd "${CLAUDE_PROJECT_DIR:-.}" \
  -- opencode serve --hostname 127.0.0.1 --port "$port"
if command -v ocwrap >/dev/null 2>&1; then
  exec ocwrap "$@"
fi
exec npx --yes ocwrap@0.1.0 "$@"
