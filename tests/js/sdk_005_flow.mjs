// The TypeScript SDK 0.0.5 (tails over the raw WebSocket `/v1/sessions/:id/tail`) against a live node:
// a session from a principal token, three appends, and `on("event")` until it has seen them; prints one
// JSON line {seqs, actors} (or {error}). Usage: node sdk_005_flow.mjs <sdk dir> <base url> <token>
// Used by tests/auth/test_sdk_005.py. Node 20 has no global WebSocket: the SDK's `ws` is given to it.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const [sdkDir, baseUrl, token] = process.argv.slice(2);
const { Starcite } = await import(pathToFileURL(path.join(sdkDir, "dist", "index.js")).href);
if (!globalThis.WebSocket) {
  globalThis.WebSocket = createRequire(path.join(sdkDir, "package.json"))("ws").WebSocket;
}
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "timed out" })); process.exit(2); }, 20000);
try {
  const client = new Starcite({ baseUrl });
  const session = await client.session({ token });
  const seen = [];
  const done = new Promise((resolve) => {
    session.on("event", (event) => {
      seen.push(event);
      if (seen.length >= 3) resolve();
    });
  });
  for (const n of [1, 2, 3]) {
    await session.append({ text: `chunk ${n}` });
  }
  await done;
  console.log(JSON.stringify({ seqs: seen.map((e) => e.seq), actors: seen.map((e) => e.actor) }));
  session.disconnect();
  clearTimeout(timer);
  process.exit(0);
} catch (error) {
  console.log(JSON.stringify({ error: String(error) }));
  process.exit(1);
}
