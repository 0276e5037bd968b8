// The newest TypeScript SDK's token path against a node: session({identity}) mints its session token at
// POST /api/v1/session-tokens, appends with it, and after the token expired, refreshes it there again.
// Usage: node sdk_session_token.mjs <sdk dir> <base url> <api key> <session id> <ms to wait before the 2nd append>
//        [strip-creator]: leave creator_principal out of the create (for a node whose create does not take it yet)
// Prints one JSON line per step; exits non-zero (error on stderr) if a step fails.
import { pathToFileURL } from "node:url";
import path from "node:path";

const [sdkDir, baseUrl, apiKey, sessionId, waitMs, option] = process.argv.slice(2);
if (!globalThis.WebSocket) {  // Node 20 has no global WebSocket; the SDK's phoenix client wants one
  const ws = await import(pathToFileURL(path.join(sdkDir, "node_modules", "ws", "index.js")).href);
  globalThis.WebSocket = ws.WebSocket ?? ws.default;
}
const { Starcite } = await import(pathToFileURL(path.join(sdkDir, "dist", "index.js")).href);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const minted = [];
const fetchLogged = (input, init) => {
  const url = String(input);
  if (url.endsWith("/api/v1/session-tokens")) {
    minted.push(JSON.parse(init.body));
  } else if (option === "strip-creator" && url.endsWith("/v1/sessions") && init.method === "POST") {
    const { creator_principal: _ignored, ...body } = JSON.parse(init.body);
    init = { ...init, body: JSON.stringify(body) };
  }
  return fetch(input, init);
};

const starcite = new Starcite({ baseUrl, apiKey, authUrl: baseUrl, fetch: fetchLogged });
const identity = starcite.agent({ id: "planner" });
const session = await starcite.session({ identity, id: sessionId });
print({ step: "session", id: session.id, token: session.token, identity: { ...session.identity }, request: minted[0] });

const first = await session.append({ text: "hello" });
print({ step: "append", seq: first.seq });

await new Promise((resolve) => setTimeout(resolve, Number(waitMs)));
const second = await session.append({ text: "after expiry" });  // 401 token_expired -> refreshToken -> retried
print({ step: "refreshed", seq: second.seq, token: session.token, mints: minted.length });
process.exit(0);
