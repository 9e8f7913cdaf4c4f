// A webhook receiver for amibridge that checks every signature.
//
//   AMIBRIDGE_WEBHOOK_SECRET=<the secret from POST /v1/webhooks> \
//       node webhook_receiver.mjs [PORT]
//
// Node.js built-ins only. Checks the Standard Webhooks signature
// (webhook-id, webhook-timestamp, webhook-signature) when the delivery has
// one, else amibridge's own (X-Amibridge-Timestamp, X-Amibridge-Signature).
// Answers 204 to a verified delivery and 401 to anything else (amibridge
// retries non-2xx answers). With npm, `standardwebhooks` (the official
// library) does the first check: new Webhook(secret).verify(body, headers).
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.AMIBRIDGE_WEBHOOK_SECRET;
const port = Number(process.argv[2] ?? 9000);
const toleranceS = 300; // refuse old deliveries replayed by someone else
const seen = new Set(); // delivery ids already handled (a database in real life)

const same = (a, b) => a.length === b.length && timingSafeEqual(a, b);
const fresh = (ts) => /^\d+$/.test(ts) && Math.abs(Date.now() / 1000 - Number(ts)) <= toleranceS;

function verifyStandard(secret, headers, body /* Buffer */) {
  const id = headers["webhook-id"] ?? "";
  const ts = headers["webhook-timestamp"] ?? "";
  if (!id || !fresh(ts)) return false;
  // whsec_<base64>: the key is the decoded bytes; an older secret is its own bytes
  const key = secret.startsWith("whsec_") ? Buffer.from(secret.slice(6), "base64") : Buffer.from(secret);
  const mac = createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest("base64");
  const want = Buffer.from(`v1,${mac}`);
  // one signature per secret still valid (several during a rotation)
  return (headers["webhook-signature"] ?? "").split(" ").some((sig) => same(Buffer.from(sig), want));
}

function verifyAmibridge(secret, headers, body /* Buffer */) {
  const ts = headers["x-amibridge-timestamp"] ?? "";
  if (!fresh(ts)) return false;
  const mac = createHmac("sha256", secret).update(`${ts}.`).update(body).digest("hex");
  return same(Buffer.from(headers["x-amibridge-signature"] ?? ""), Buffer.from(`sha256=${mac}`));
}

createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const standard = "webhook-signature" in req.headers;
    const ok = standard ? verifyStandard(secret, req.headers, body) : verifyAmibridge(secret, req.headers, body);
    res.writeHead(ok ? 204 : 401).end();
    const delivery = req.headers["webhook-id"] ?? req.headers["x-amibridge-delivery"];
    if (ok && !seen.has(delivery)) { // at-least-once: an id may come twice
      seen.add(delivery);
      console.log("verified", JSON.parse(body).event, delivery, standard ? "standard" : "amibridge");
    }
  });
}).listen(port, "127.0.0.1");
