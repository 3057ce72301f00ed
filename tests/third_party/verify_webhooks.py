"""Verifies recorded webhook requests with the reference Standard Webhooks library, as a
partner would. Input: a JSON list of {secret, id, timestamp, signature, body, expect}."""

import json
import sys

from standardwebhooks.webhooks import Webhook

checks = json.load(open(sys.argv[1]))
verified = 0
for c in checks:
    headers = {
        "webhook-id": c["id"],
        "webhook-timestamp": c["timestamp"],
        "webhook-signature": c["signature"],
    }
    try:
        Webhook(c["secret"]).verify(c["body"], headers)
        ok, why = True, ""
    except Exception as e:  # the library raises WebhookVerificationError
        ok, why = False, repr(e)
    if ok != c["expect"]:
        print(f"{c['id']}: expected {'valid' if c['expect'] else 'invalid'}, got {why or 'valid'}")
        sys.exit(1)
    verified += ok
print(f"{verified} verified")
