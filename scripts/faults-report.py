"""The fault suite's figures (scripts/faults.sh): a soak's memory slopes, and the markdown report.

  faults-report.py soak RSS_CSV SECONDS ERRORS VERDICT RECONCILE_JSON   one JSON line
  faults-report.py report RESULTS_JSONL COMMAND                         RELIABILITY.md
"""

import datetime
import json
import os
import platform
import sys


def slope(points):
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def soak(rss_csv, seconds, errors, verdict, reconcile_json):
    seconds = int(seconds)
    warm = seconds / 6
    series = {}
    for line in open(rss_csv):
        at, worker, kib = line.strip().split(",")
        if kib:
            series.setdefault(worker, []).append((int(at), int(kib) / 1024))
    workers = {}
    for worker, points in series.items():
        after = [(t, m) for t, m in points if t >= warm]
        workers[worker] = {
            "warmMiB": round(after[0][1], 1) if after else None,
            "endMiB": round(points[-1][1], 1),
            "peakMiB": round(max(m for _, m in points), 1),
            "slopeMiBPerHour": round(slope(after) * 3600, 2),
        }
    try:
        rec = json.load(open(reconcile_json))
    except (OSError, ValueError):
        rec = None
    print(json.dumps({"fault": "soak", "seconds": seconds, "workers": workers,
                      "errors": int(errors), "verdict": verdict, "reconcile": rec}))


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    return f"{os.cpu_count()} cores ({cpu}), {mem / 2**20:.0f} GiB, Linux {platform.release()}"


def report(results_jsonl, command):
    rows = [json.loads(l) for l in open(results_jsonl) if l.strip()]
    out = [
        "# Reliability",
        "",
        "What muster's fault suite (`scripts/faults.sh`) found in its last full run: one fault at",
        "a time against a busy pipeline (simulated upstreams polled every second with pushed",
        "check-ins, a partner's webhook receiver subscribed to every alert, a reader on the",
        "partner API), each worker kind its own process under a supervisor that restarts it,",
        "and after each fault `muster reconcile`:",
        "",
        "- **answered → raw**: every snapshot the simulator answered with a 200 is on the raw",
        "  topic exactly once (lost, doubled);",
        "- **raw → normalized**: every raw snapshot has exactly one normalized record or one",
        "  dead letter (unprocessed, processed twice);",
        "- **projections**: every projection equals a rebuild from its topics (`muster replay",
        "  --dry-run` of each; rows that differ);",
        "- **webhooks**: every alert was queued once for the subscribed endpoint, delivered, and",
        "  received with a 2xx, first arrivals in sequence order per event; a repeat carries the",
        "  same `webhook-id` (redelivered: allowed, receivers dedupe on it).",
        "",
        "*Back* is the seconds from the fault's end (the kill, or the service answering again)",
        "until a snapshot polled after it is in the API (`/api/public/events`; for the hung",
        "upstream, that event's; for the hung receiver, until a delivery arrives). *Reader",
        "errors*: the partner API reader's non-200 answers from the fault's start until then.",
        "",
        f"Run: `{command}` on {datetime.date.today().isoformat()}, {machine()},",
        "debug build, every service and worker on the same machine.",
        "",
        "| fault | back (s) | answered | lost | doubled | raw | unprocessed / twice "
        "| dead letters | projection rows differing | webhooks queued | not queued / undelivered "
        "| doubled / out of order | redelivered | reader errors | reconcile |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    soaks = []
    for r in rows:
        if r["fault"] == "soak":
            soaks.append(r)
            continue
        c = r.get("reconcile") or {}
        w = c.get("webhooks") or {}
        compared = c.get("projectionDifferences") or []
        diff = sum(n for _, n in compared) if compared else "at the end"
        lost = c.get("answeredLost", "?")
        if c.get("lostWithIngest"):
            lost = f"{lost} (+{c['lostWithIngest']} in flight at the kill)"
        back = "none" if r["recoverySecs"] is None else f"{r['recoverySecs']:.1f}"
        out.append(
            f"| {r['fault']} | {back} | {c.get('answered', '?')} | {lost} "
            f"| {c.get('answeredDuplicated', '?')} | {c.get('raw', '?')} "
            f"| {c.get('rawUnprocessed', '?')} / {c.get('rawProcessedTwice', '?')} "
            f"| {c.get('deadLetters', '?')} | {diff} | {w.get('queued', '?')} "
            f"| {w.get('alertsNotQueued', '?')} / {w.get('undelivered', '?')} "
            f"| {w.get('queuedTwice', 0) + w.get('receivedUnknown', 0)} / {w.get('outOfOrder', '?')} "
            f"| {w.get('redelivered', '?')} | {r['readerErrors']} | {r['verdict']} |")
    for s in soaks:
        out += ["", f"## Soak: {s['seconds'] // 60} minutes at the same load, no faults", "",
                "Resident memory of each worker every 10 s; the slope is a least-squares fit",
                "after the first sixth of the run (warm-up).", "",
                "| worker | after warm-up (MiB) | end (MiB) | peak (MiB) | slope (MiB/h) |",
                "|---|---|---|---|---|"]
        for name, m in sorted(s["workers"].items()):
            out.append(f"| {name} | {m['warmMiB']} | {m['endMiB']} | {m['peakMiB']} "
                       f"| {m['slopeMiBPerHour']} |")
        c = s.get("reconcile") or {}
        differing = sum(n for _, n in c.get("projectionDifferences", []))
        out += ["", f"Errors logged by the workers during the soak: {s['errors']}. Reconcile at "
                    f"the end: {s['verdict']} ({c.get('answered', '?')} answers, "
                    f"{c.get('raw', '?')} raw snapshots, "
                    f"{len(c.get('projectionDifferences', []))} tables compared with a rebuild, "
                    f"{differing} rows differing; webhooks: "
                    f"{(c.get('webhooks') or {}).get('queued', '?')} queued)."]
    print("\n".join(out))


if __name__ == "__main__":
    {"soak": soak, "report": report}[sys.argv[1]](*sys.argv[2:])
