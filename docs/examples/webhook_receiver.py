#!/usr/bin/env python3
"""A webhook receiver for amibridge that checks every signature.

    AMIBRIDGE_WEBHOOK_SECRET=<the secret from POST /v1/webhooks> \
        python3 webhook_receiver.py [PORT]

Standard library only. Answers 204 to a verified delivery and 401 to anything
else (amibridge retries non-2xx answers, so a bad secret shows up as retries
in GET /v1/webhooks/{id}/deliveries).
"""
import hashlib
import hmac
import http.server
import json
import os
import sys
import time

SECRET = os.environ["AMIBRIDGE_WEBHOOK_SECRET"].encode()
TOLERANCE_S = 300  # refuse old deliveries replayed by someone else
seen = set()  # delivery ids already handled (a database in real life)


def verify(headers, body):
    ts = headers.get("X-Amibridge-Timestamp", "")
    sig = headers.get("X-Amibridge-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE_S:
        return False
    mac = hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, "sha256=" + mac)


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: amibridge reuses the connection

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = verify(self.headers, body)
        self.send_response(204 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
        delivery = self.headers.get("X-Amibridge-Delivery")
        if ok and delivery not in seen:  # at-least-once: an id may come twice
            seen.add(delivery)
            print("verified", json.loads(body)["event"], delivery, flush=True)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
