// Runs README.md's "Level 2" plugin code against the real opencode server, so the
// documentation cannot rot: the code block after `<!-- level-2 -->` is extracted
// (not copied), imported, and driven like a plugin would: two sessions share one
// server, each SessionEnd hook returns well inside 1.5 s, and the server is gone
// once both sessions are. Needs `ocwrap` and `opencode` on PATH (e2e-opencode.sh).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const fail = (why) => {
  console.error(`readme-level2: FAILED: ${why}`);
  process.exit(1);
};
const say = (what) => console.log(`readme-level2: ${what}`);

const readme = readFileSync(process.argv[2] ?? "README.md", "utf8");
const block = readme.match(/<!-- level-2 -->\s*```js\n([\s\S]*?)```/);
if (!block) fail("README.md has no ```js block after <!-- level-2 -->");
const file = join(mkdtempSync(join(tmpdir(), "ocwrap-level2-")), "level2.mjs");
writeFileSync(file, block[1]);
const { ensureServer, onSessionEnd } = await import(file);

const sessions = [spawn("sleep", ["1000"]), spawn("sleep", ["1000"])];
try {
  const first = await ensureServer(sessions[0].pid);
  say(`first session: ${JSON.stringify(first)}`);
  if (first.status !== "started") fail(`expected started, got ${first.status}`);
  const health = await fetch(`${first.url}/global/health`);
  if (!health.ok) fail(`health answered ${health.status}`);
  const created = await fetch(`${first.url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  }).then((r) => r.json());
  if (!String(created.id).startsWith("ses_")) fail(`no session created: ${JSON.stringify(created)}`);

  const second = await ensureServer(sessions[1].pid);
  if (second.status !== "attached" || second.pid !== first.pid) fail(`second session: ${JSON.stringify(second)}`);
  say(`second session attached to pid ${second.pid}`);

  for (const [i, session] of sessions.entries()) {
    const began = performance.now();
    onSessionEnd(session.pid);
    const took = performance.now() - began;
    say(`SessionEnd hook ${i + 1} took ${took.toFixed(0)} ms`);
    if (took >= 1500) fail(`SessionEnd hook took ${took} ms, over the 1.5 s budget`);
    if (i === 0 && !(await fetch(`${first.url}/global/health`)).ok) fail("server gone while a session still uses it");
  }

  // Gone means the port refuses and the PID no longer exists.
  const until = Date.now() + 30000;
  const exists = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      if (e.code === "ESRCH") return false;
      throw e;
    }
  };
  for (;;) {
    const answers = await fetch(`${first.url}/global/health`, { signal: AbortSignal.timeout(500) }).then(
      () => true,
      () => false,
    );
    if (!answers && !exists(first.pid)) break;
    if (Date.now() > until) fail("the server still runs 30 s after the last SessionEnd");
    await new Promise((ok) => setTimeout(ok, 100));
  }
  say("server gone after the last session ended");
} finally {
  for (const s of sessions) s.kill("SIGKILL");
}
