"""Validates webhook messages against muster's own event-type catalogue with an independent
JSON Schema validator (`jsonschema-rs`, installed with schemathesis), as a partner would. Input: a JSON object {catalogue, messages}: `catalogue` is the
answer of GET /api/partner/webhooks/event-types, `messages` the bodies (text) a receiver got.
Every catalogue example and every message must be valid against its type's schema; an
example with a field added must not be (so the check can fail)."""

import json
import sys

import jsonschema_rs

given = json.load(open(sys.argv[1]))
schemas = {}
for entry in given["catalogue"]["eventTypes"]:
    jsonschema_rs.meta.validate(entry["schema"])
    schemas[entry["type"]] = jsonschema_rs.Draft202012Validator(
        entry["schema"], validate_formats=True
    )


def errors(message):
    validator = schemas.get(message.get("type"))
    if validator is None:
        return [f"no schema for type {message.get('type')!r}"]
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(message)]


failed = []
for entry in given["catalogue"]["eventTypes"]:
    for e in errors(entry["example"]):
        failed.append(f"example of {entry['type']}: {e}")
    extra = json.loads(json.dumps(entry["example"]))
    extra["data"]["unexpected"] = 1
    if not errors(extra):
        failed.append(f"{entry['type']}: an extra field was accepted")
for body in given["messages"]:
    message = json.loads(body)
    for e in errors(message):
        failed.append(f"{message.get('type')} {body[:200]}: {e}")
if failed:
    print("\n".join(failed))
    sys.exit(1)
print(f"{len(schemas)} schemas, {len(given['messages'])} messages valid")
