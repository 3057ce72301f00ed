"""Deletes what earlier test runs left on the cluster: every end-to-end test has topics of its
own, named behind a prefix `t<8 hex>.` (tests/e2e/common), and registry subjects named after
them. Run by scripts/test.sh before the tests, with the test venv's Python (confluent-kafka).

    clean-test-topics.py --brokers 127.0.0.1:9092 --registry http://127.0.0.1:8081/apis/ccompat/v7
"""

import argparse
import json
import re
import sys
import urllib.request

from confluent_kafka.admin import AdminClient

TEST_TOPIC = re.compile(r"^t[0-9a-f]{8}\.")


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--brokers", required=True)
    args.add_argument("--registry", required=True)
    a = args.parse_args()

    admin = AdminClient({"bootstrap.servers": a.brokers})
    topics = [t for t in admin.list_topics(timeout=30).topics if TEST_TOPIC.match(t)]
    if topics:
        for topic, done in admin.delete_topics(topics, operation_timeout=60).items():
            try:
                done.result()
            except Exception as e:  # already gone, or being deleted
                print(f"deleting {topic}: {e}", file=sys.stderr)
    with urllib.request.urlopen(f"{a.registry}/subjects", timeout=30) as r:
        subjects = [s for s in json.load(r) if TEST_TOPIC.match(s)]
    for subject in subjects:
        for permanent in ("", "?permanent=true"):
            req = urllib.request.Request(
                f"{a.registry}/subjects/{subject}{permanent}", method="DELETE"
            )
            try:
                urllib.request.urlopen(req, timeout=30).read()
            except Exception as e:
                print(f"deleting subject {subject}: {e}", file=sys.stderr)
                break
    print(f"removed {len(topics)} test topics and {len(subjects)} test subjects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
