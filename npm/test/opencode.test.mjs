// The installed ocwrap package against the real server: `opencode serve` from
// the npm package opencode-ai (OPENCODE_BIN, installed into .e2e/ by
// shell/e2e-opencode.sh). One session starts it through the API, talks to it over
// HTTP, and releases it: the whole tree goes and the port is free.
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { release, status, up } from "ocwrap";

import { freePort, gone, session, stateDir } from "./helpers.mjs";

const opencode = process.env.OPENCODE_BIN;
assert.ok(opencode, "OPENCODE_BIN names the opencode binary");

const sessions = [];
after(() => {
  for (const s of sessions) s.end();
});

test("up starts opencode serve, a session is created over HTTP, release tears it down", async () => {
  const dir = stateDir();
  const port = await freePort();
  const s = session();
  sessions.push(s);
  const server = await up({
    port,
    stateDir: dir,
    health: "/global/health",
    ownerPid: s.pid,
    readyTimeout: "90s",
    grace: "2s",
    command: [opencode, "serve", "--hostname", "127.0.0.1", "--port", String(port)],
  });
  assert.equal(server.status, "started");
  const health = await fetch(`${server.url}/global/health`);
  assert.ok(health.ok, `health answered ${health.status}`);
  const created = await fetch(`${server.url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  }).then((r) => r.json());
  assert.match(String(created.id), /^ses_/, JSON.stringify(created));
  const [supervisor] = (await status({ port, stateDir: dir })).supervisors;
  assert.equal(supervisor.record.state, "ready");

  const began = performance.now();
  await release({ port, stateDir: dir, ownerPid: s.pid });
  const took = performance.now() - began;
  assert.ok(took < 1500, `release took ${took} ms, over a SessionEnd hook's 1.5 s`);
  await gone("opencode after the release", server.pid, port);
  await gone("its supervisor", server.supervisor_pid, port);
});
