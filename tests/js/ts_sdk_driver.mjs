// Drives the official TypeScript SDK (a build from ../shared/clients, copied and installed by
// tests/test_ts_sdk.py) against a live node, one command per stdin line, one JSON line per result.
//
// usage: node ts_sdk_driver.mjs <sdk dir> <base url> [api key]
// commands ({"op": ...}): open {name, session_id, token?}, open_refreshing {name, session_id} (a session
// token from /api/v1/session-tokens, minted again whenever the SDK refreshes it), follow {name}, append {name, payload},
// range {name, from, to}, disconnect {name}, lifecycle {}, list {archived?}, patch {session_id, title,
// expected_version}, archive {session_id}, unarchive {session_id}, exit {}.
// Out: {"ok": op, ...} when a command is done, {"event": {...}, "name", "phase"} for each event a
// follower gets, {"lifecycle": {...}}, {"error": message, "op"} on a failure.
// Without an api key (auth off) tokens are unsigned JWTs the node ignores (the SDK reads their claims only).

import { createInterface } from "node:readline";
import path from "node:path";

const [sdkDir, baseUrl, givenApiKey] = process.argv.slice(2);
if (!globalThis.WebSocket) {
  // Node 20 has no global WebSocket; the SDK's phoenix client needs one.
  globalThis.WebSocket = (await import(path.join(sdkDir, "node_modules", "ws", "index.js"))).default;
}
const { Starcite, MemorySessionStore } = await import(path.join(sdkDir, "dist", "index.js"));

const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const unsignedJwt = (claims) => `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.x`;

const store = new MemorySessionStore();
const apiKey = givenApiKey ?? unsignedJwt({ tenant_id: "acme", sub: "service:tests" });
const starcite = new Starcite({ baseUrl, sessionStore: store, apiKey, authUrl: new URL(baseUrl).origin });
const sessions = new Map();

const commands = {
  open({ name, session_id, token }) {
    const session = starcite.session({
      token: token ?? unsignedJwt({ session_id, tenant_id: "acme", sub: "agent:tester" }),
    });
    session.on("error", (error) => out({ error: String(error?.message ?? error), op: "stream", name }));
    sessions.set(name, session);
  },
  async open_refreshing({ name, session_id }) {
    let mints = 0;
    const mint = async () => {
      const { token } = await starcite.issueSessionToken({
        session_id, principal: { type: "agent", id: "tester" }, scopes: ["session:read", "session:append"],
      });
      mints += 1;
      if (mints > 1) out({ refreshed: mints, name });
      return token;
    };
    const session = starcite.session({ token: await mint(), refreshToken: mint });
    session.on("error", (error) => out({ stream_error: String(error?.message ?? error), name }));
    sessions.set(name, session);
  },
  follow({ name }) {
    sessions.get(name).on("event", (event, context) => out({ event, name, phase: context?.phase }));
  },
  async append({ name, payload, type }) {
    return { result: await sessions.get(name).append({ type: type ?? "message", payload }) };
  },
  async range({ name, from, to }) {
    const events = await sessions.get(name).range(from, to);
    return { seqs: events.map((event) => event.seq) };
  },
  disconnect({ name }) {
    sessions.get(name).disconnect();
    sessions.delete(name);
  },
  lifecycle() {
    starcite.on("lifecycle", (event) => out({ lifecycle: event }));
    starcite.on("session.created", (event) => out({ typed: event }));  // only events the SDK's schema accepts
    starcite.on("error", (error) => out({ error: String(error?.message ?? error), op: "lifecycle" }));
  },
  async list({ archived }) {
    return { page: await starcite.listSessions({ limit: 100, ...(archived === undefined ? {} : { archived }) }) };
  },
  async patch({ session_id, title, expected_version }) {
    return { record: await starcite.updateSession(session_id, { title, expectedVersion: expected_version }) };
  },
  async archive({ session_id }) {
    return { record: await starcite.archiveSession(session_id) };
  },
  async unarchive({ session_id }) {
    return { record: await starcite.unarchiveSession(session_id) };
  },
  exit() {
    for (const session of sessions.values()) session.disconnect();
    setTimeout(() => process.exit(0), 50);
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    const result = await commands[command.op](command);
    out({ ok: command.op, ...(result ?? {}) });
  } catch (error) {
    out({ error: String(error?.message ?? error), op: command.op });
  }
}
process.exit(0);
