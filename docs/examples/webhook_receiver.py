#!/usr/bin/env python3
"""A webhook receiver for amibridge that checks every signature.

    AMIBRIDGE_WEBHOOK_SECRET=<the secret from POST /v1/webhooks> \
        python3 webhook_receiver.py [PORT]

Standard library only. Checks the Standard Webhooks signature (webhook-id,
webhook-timestamp, webhook-signature) when the delivery has one, else
amibridge's own (X-Amibridge-Timestamp, X-Amibridge-Signature). Answers 204
to a verified delivery and 401 to anything else (amibridge retries non-2xx
answers, so a bad secret shows up as retries in
GET /v1/webhooks/{id}/deliveries). With pip, `standardwebhooks` (the
official library) does the first check: Webhook(secret).verify(body, headers).
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import time

SECRET = os.environ["AMIBRIDGE_WEBHOOK_SECRET"]
TOLERANCE_S = 300  # refuse old deliveries replayed by someone else
seen = set()  # delivery ids already handled (a database in real life)


def verify_standard(secret, headers, body, tolerance_s=300):
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    # whsec_<base64>: the key is the decoded bytes; an older secret is its own bytes
    if secret.startswith("whsec_"):
        key = base64.b64decode(secret[len("whsec_"):])
    else:
        key = secret.encode()
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    # one signature per secret still valid (several during a rotation)
    return any(hmac.compare_digest(sig, want) for sig in headers.get("webhook-signature", "").split(" "))


def verify_amibridge(secret, headers, body, tolerance_s=300):
    ts = headers.get("X-Amibridge-Timestamp", "")
    sig = headers.get("X-Amibridge-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, "sha256=" + mac)


def verify(headers, body):
    if "webhook-signature" in headers:
        return verify_standard(SECRET, headers, body, TOLERANCE_S)
    return verify_amibridge(SECRET, headers, body, TOLERANCE_S)


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: amibridge reuses the connection

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = verify(self.headers, body)
        self.send_response(204 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
        delivery = self.headers.get("webhook-id") or self.headers.get("X-Amibridge-Delivery")
        if ok and delivery not in seen:  # at-least-once: an id may come twice
            seen.add(delivery)
            scheme = "standard" if "webhook-signature" in self.headers else "amibridge"
            print("verified", json.loads(body)["event"], delivery, scheme, flush=True)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
