// Drives the session-record calls of an official TypeScript SDK build against a live node and
// prints one JSON line per step (what the SDK's own zod schemas accepted, or the error it raised).
// Usage: node sdk_session_records.mjs <sdk dir> <base url> <session id> <"0.0.16" | "0.0.5">
// Used by tests/test_ts_sdk_records.py; REST only (the newest SDK's tails are Phoenix channels).
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, baseUrl, sessionId, flavour] = process.argv.slice(2);
const { Starcite, StarciteApiError } = await import(pathToFileURL(path.join(sdkDir, "dist", "index.js")).href);
const client = new Starcite({ baseUrl });
const out = (step, value) => console.log(JSON.stringify({ step, value }));
const ids = (page) => page.sessions.map((s) => s.id);

async function step(name, fn) {
  try {
    out(name, await fn());
  } catch (error) {
    if (error instanceof StarciteApiError) {
      out(name, { error: error.code, status: error.status, current_version: error.payload?.current_version });
    } else {
      out(name, { thrown: String(error) });
    }
  }
}

const filter = { metadata: { case: sessionId } };
if (flavour === "0.0.16") {
  await step("get", () => client.getSession(sessionId));
  await step("update", () => client.updateSession(sessionId, { title: "U", metadata: { k: "v" }, expectedVersion: 1 }));
  await step("stale_update", () => client.updateSession(sessionId, { title: "W", expectedVersion: 1 }));
  await step("clear_title", () => client.updateSession(sessionId, { title: null }));
  await step("archive", () => client.archiveSession(sessionId));
  await step("list_default", async () => ids(await client.listSessions(filter)));
  await step("list_archived", async () => ids(await client.listSessions({ ...filter, archived: true })));
  await step("list_all", async () => ids(await client.listSessions({ ...filter, archived: "all" })));
  await step("unarchive", () => client.unarchiveSession(sessionId));
  await step("list_after_unarchive", async () => ids(await client.listSessions(filter)));
} else {
  await step("list_default", async () => ids(await client.listSessions(filter)));
}
