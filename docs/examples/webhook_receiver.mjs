// A webhook receiver for amibridge that checks every signature.
//
//   AMIBRIDGE_WEBHOOK_SECRET=<the secret from POST /v1/webhooks> \
//       node webhook_receiver.mjs [PORT]
//
// Node.js built-ins only. Answers 204 to a verified delivery and 401 to
// anything else (amibridge retries non-2xx answers).
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.AMIBRIDGE_WEBHOOK_SECRET;
const port = Number(process.argv[2] ?? 9000);
const toleranceS = 300; // refuse old deliveries replayed by someone else
const seen = new Set(); // delivery ids already handled (a database in real life)

function verify(headers, body) {
  const ts = headers["x-amibridge-timestamp"] ?? "";
  const sig = Buffer.from(headers["x-amibridge-signature"] ?? "");
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > toleranceS) return false;
  const mac = createHmac("sha256", secret).update(`${ts}.`).update(body).digest("hex");
  const want = Buffer.from(`sha256=${mac}`);
  return sig.length === want.length && timingSafeEqual(sig, want);
}

createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const ok = verify(req.headers, body);
    res.writeHead(ok ? 204 : 401).end();
    const delivery = req.headers["x-amibridge-delivery"];
    if (ok && !seen.has(delivery)) { // at-least-once: an id may come twice
      seen.add(delivery);
      console.log("verified", JSON.parse(body).event, delivery);
    }
  });
}).listen(port, "127.0.0.1");
