// Runs one of README.md's "Level 2" plugin code blocks against the real opencode
// server, so the documentation cannot rot: the ```js block after
// `<!-- MARKER -->` is extracted (not copied), and two stand-in Claude Code
// sessions (this script as `claude`, argv[0] as the real CLI's process title) each
// import it and drive it as a plugin would: both call ensureServer() and share one
// server; a `/clear` in the first one (SessionEnd with reason "clear", the session
// process goes on) keeps its lease; every SessionEnd hook returns well inside
// 1.5 s; the server outlives the second session's real end and is gone once the
// first one's comes too. The block names no PID: `owner: "session"` finds each
// session's process.
//
//   node shell/readme-level2.mjs README.md level-2 PROJECT-DIR   (the JS API form:
//     written into PROJECT-DIR, where the ocwrap package is installed; shell/npm.sh)
//   node shell/readme-level2.mjs README.md level-2-raw          (the execFile form:
//     needs `ocwrap` on PATH; shell/e2e-opencode.sh)
//
// Both need `opencode` on PATH.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const fail = (why) => {
  console.error(`readme-level2: FAILED: ${why}`);
  process.exit(1);
};
const say = (what) => console.log(`readme-level2: ${what}`);

if (process.argv[2] === "--session") {
  // A stand-in session: runs the block's functions on request, one JSON line each.
  const { ensureServer, onSessionEnd } = await import(process.argv[3]);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [verb, reason] = line.split(" ");
    const began = performance.now();
    try {
      const result =
        verb === "ensure"
          ? await ensureServer()
          : await onSessionEnd({ hook_event_name: "SessionEnd", session_id: "s", reason });
      console.log(JSON.stringify({ ok: true, result: result ?? null, ms: performance.now() - began }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, error: `${e.message} (kind ${e.kind})` }));
    }
  }
  process.exit(0);
}

const [readmePath = "README.md", marker = "level-2", dir] = process.argv.slice(2);
const readme = readFileSync(readmePath, "utf8");
const block = readme.match(new RegExp(`<!-- ${marker} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``));
if (!block) fail(`README.md has no \`\`\`js block after <!-- ${marker} -->`);
const file = join(dir ?? mkdtempSync(join(tmpdir(), "ocwrap-level2-")), `readme-${marker}.mjs`);
writeFileSync(file, block[1]);

/** A stand-in Claude Code session process that runs the block. */
function session() {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--session", file], {
    argv0: "claude",
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, CLAUDE_CONFIG_DIR: mkdtempSync(join(tmpdir(), "ocwrap-level2-claude-")) },
  });
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    async ask(line) {
      child.stdin.write(`${line}\n`);
      const { value, done } = await replies.next();
      if (done) fail(`session ${child.pid} ended before it answered ${line}`);
      const reply = JSON.parse(value);
      if (!reply.ok) fail(`${line} in session ${child.pid}: ${reply.error}`);
      return reply;
    },
  };
}

const sessions = [session(), session()];
// `fail` exits at once, past any `finally`: the stand-in sessions (and so the
// server they own) must not outlive this script either way.
process.on("exit", () => {
  for (const s of sessions) s.child.kill("SIGKILL");
});
const answers = (url) =>
  fetch(`${url}/global/health`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.ok,
    () => false,
  );

/** Runs the SessionEnd hook as Claude Code would, within its 1.5 s budget. */
async function sessionEnd(i, reason) {
  const { ms } = await sessions[i].ask(`end ${reason}`);
  say(`SessionEnd (${reason}) of session ${i + 1} took ${ms.toFixed(0)} ms`);
  if (ms >= 1500) fail(`SessionEnd hook took ${ms} ms, over the 1.5 s budget`);
}

try {
  const first = (await sessions[0].ask("ensure")).result;
  say(`first session: ${JSON.stringify(first)}`);
  if (first.status !== "started") fail(`expected started, got ${first.status}`);
  const lease = (answer, i) => JSON.stringify(answer.leases.map((l) => [l.pid, l.found_by]));
  if (lease(first) !== JSON.stringify([[sessions[0].child.pid, "session_name"]])) {
    fail(`the first lease is not the first session's: ${lease(first)}`);
  }
  if (!(await answers(first.url))) fail("the server does not answer its health path");
  const created = await fetch(`${first.url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  }).then((r) => r.json());
  if (!String(created.id).startsWith("ses_")) fail(`no session created: ${JSON.stringify(created)}`);

  const second = (await sessions[1].ask("ensure")).result;
  if (second.status !== "attached" || second.pid !== first.pid) fail(`second session: ${JSON.stringify(second)}`);
  if (lease(second) !== JSON.stringify([[sessions[1].child.pid, "session_name"]])) {
    fail(`the second lease is not the second session's: ${lease(second)}`);
  }
  say(`second session attached to pid ${second.pid}`);

  await sessionEnd(0, "clear");
  if (!(await answers(first.url))) fail("server gone after /clear");
  await sessionEnd(1, "prompt_input_exit");
  if (!(await answers(first.url))) fail("server gone while the first session (after its /clear) still runs");
  await sessionEnd(0, "prompt_input_exit");

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
  while ((await answers(first.url)) || exists(first.pid)) {
    if (Date.now() > until) fail("the server still runs 30 s after the last SessionEnd");
    await new Promise((ok) => setTimeout(ok, 100));
  }
  say("server gone after the last session ended");
  // A SessionEnd after the server is gone is no error.
  await sessionEnd(1, "logout");
} finally {
  for (const s of sessions) s.child.kill("SIGKILL");
}
