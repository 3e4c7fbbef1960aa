// Runs one of README.md's "Level 2" plugin code blocks against the real opencode
// server, so the documentation cannot rot: the ```js block after
// `<!-- MARKER -->` is extracted (not copied), imported, and driven like a plugin
// would drive it: two sessions share one server; a `/clear` in the first one
// (SessionEnd with reason "clear", the session process goes on) keeps its lease;
// every SessionEnd hook returns well inside 1.5 s; the server outlives the second
// session's real end and is gone once the first one's comes too.
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

const fail = (why) => {
  console.error(`readme-level2: FAILED: ${why}`);
  process.exit(1);
};
const say = (what) => console.log(`readme-level2: ${what}`);

const [readmePath = "README.md", marker = "level-2", dir] = process.argv.slice(2);
const readme = readFileSync(readmePath, "utf8");
const block = readme.match(new RegExp(`<!-- ${marker} -->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``));
if (!block) fail(`README.md has no \`\`\`js block after <!-- ${marker} -->`);
const file = join(dir ?? mkdtempSync(join(tmpdir(), "ocwrap-level2-")), `readme-${marker}.mjs`);
writeFileSync(file, block[1]);
const { ensureServer, onSessionEnd } = await import(file);

const sessions = [spawn("sleep", ["1000"]), spawn("sleep", ["1000"])];
// `fail` exits at once, past any `finally`: the stand-in sessions (and so the
// server they own) must not outlive this script either way.
process.on("exit", () => {
  for (const s of sessions) s.kill("SIGKILL");
});
const answers = (url) =>
  fetch(`${url}/global/health`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.ok,
    () => false,
  );

/** Runs the SessionEnd hook as Claude Code would, within its 1.5 s budget. */
async function sessionEnd(i, reason) {
  const began = performance.now();
  await onSessionEnd(sessions[i].pid, reason);
  const took = performance.now() - began;
  say(`SessionEnd (${reason}) of session ${i + 1} took ${took.toFixed(0)} ms`);
  if (took >= 1500) fail(`SessionEnd hook took ${took} ms, over the 1.5 s budget`);
}

try {
  const first = await ensureServer(sessions[0].pid);
  say(`first session: ${JSON.stringify(first)}`);
  if (first.status !== "started") fail(`expected started, got ${first.status}`);
  if (!(await answers(first.url))) fail("the server does not answer its health path");
  const created = await fetch(`${first.url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  }).then((r) => r.json());
  if (!String(created.id).startsWith("ses_")) fail(`no session created: ${JSON.stringify(created)}`);

  const second = await ensureServer(sessions[1].pid);
  if (second.status !== "attached" || second.pid !== first.pid) fail(`second session: ${JSON.stringify(second)}`);
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
} finally {
  for (const s of sessions) s.kill("SIGKILL");
}
