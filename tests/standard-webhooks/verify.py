#!/usr/bin/env python3
"""Standard Webhooks verification of captured amibridge deliveries, in Python.

    python3 verify.py CASES.json

CASES.json is a list of {"name", "secret", "raw", "headers", "body_b64"}:
`secret` as amibridge showed it, `raw` true when the receiver is to use
its bytes as the key (a secret not of the whsec_ form), `headers` as
received, `body_b64` the body bytes as received. Prints one JSON line per
case, {"name", "ok", "error"}, and exits 0 (the verdicts are the caller's
to judge; 2 for a bad CASES file).

The verifier is written from the Standard Webhooks specification
(spec/standard-webhooks.md of github.com/standard-webhooks/standard-webhooks),
not from amibridge's code, with the standard library only: HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<body>", keyed with the base64-decoded
part of a whsec_ secret, compared in constant time with every "v1,"
signature of webhook-signature; a timestamp more than 5 minutes off is
refused.

With STANDARDWEBHOOKS_PYTHONPATH set to a directory that holds the
official Python library (its standardwebhooks package, which needs only
the standard library), that library verifies instead: verify.mjs runs
every case through both, the official one from vendor/python (copied
unchanged from the Standard Webhooks repository, see its README.md).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

TOLERANCE_S = 5 * 60
PREFIX = "whsec_"


class Refused(Exception):
    pass


def key_of(secret, raw):
    if raw:
        return secret.encode()
    if secret.startswith(PREFIX):
        secret = secret[len(PREFIX):]
    return base64.b64decode(secret, validate=True)


def verify(secret, raw, headers, body):
    h = {k.lower(): v for k, v in headers.items()}
    msg_id = h.get("webhook-id")
    ts = h.get("webhook-timestamp")
    sigs = h.get("webhook-signature")
    if not (msg_id and ts and sigs):
        raise Refused("missing webhook-id, webhook-timestamp or webhook-signature")
    if not ts.isdigit():
        raise Refused("webhook-timestamp is not Unix seconds")
    if abs(time.time() - int(ts)) > TOLERANCE_S:
        raise Refused("webhook-timestamp is more than 5 minutes off")
    mac = hmac.new(key_of(secret, raw), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    for sig in sigs.split(" "):
        version, _, value = sig.partition(",")
        if version != "v1":
            continue
        try:
            got = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hmac.compare_digest(mac, got):
            return json.loads(body)
    raise Refused("no matching signature")


def official():
    path = os.environ.get("STANDARDWEBHOOKS_PYTHONPATH")
    if not path:
        return None
    sys.path.insert(0, path)
    from standardwebhooks import Webhook  # noqa: E402 (only with the variable set)

    def run(secret, raw, headers, body):
        return Webhook(secret.encode() if raw else secret).verify(body, headers)

    return run


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            cases = json.load(f)
    except (OSError, ValueError) as e:
        print(f"verify.py: {e}", file=sys.stderr)
        return 2
    check = official() or verify
    for c in cases:
        try:
            check(c["secret"], c.get("raw", False), c["headers"], base64.b64decode(c["body_b64"]))
            out = {"name": c["name"], "ok": True, "error": None}
        except Exception as e:  # every refusal, whatever the verifier raises
            out = {"name": c["name"], "ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
    print(json.dumps({"verifier": "official" if check is not verify else "spec"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
