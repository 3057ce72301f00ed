"""Reads muster records as a partner would: Confluent's own Python client and its Avro
deserializer, pointed at the schema registry. Prints each matching record as JSON lines.

usage: read_topic.py --brokers B --registry URL --topic T --event-id ID [--since MS] [--count N]
                     [--timeout S]
"""
import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--brokers", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--event-id", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--since", type=int, default=None,
                   help="start at this time (epoch ms) instead of the beginning of the topic")
    a = p.parse_args()

    # A registry that stalls fails the read (with a traceback) instead of hanging it.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": a.registry, "timeout": 10}))
    # Partitions are assigned, not subscribed: no consumer group to join, so a busy group
    # coordinator cannot hold the reader past its deadline.
    consumer = Consumer({
        "bootstrap.servers": a.brokers,
        "group.id": f"third-party-{a.event_id}-{time.time()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    metadata = consumer.list_topics(a.topic, timeout=10)
    start = a.since if a.since is not None else OFFSET_BEGINNING
    wanted = [TopicPartition(a.topic, p, start) for p in metadata.topics[a.topic].partitions]
    if a.since is not None:
        wanted = consumer.offsets_for_times(wanted, timeout=10)
    consumer.assign(wanted)
    found = 0
    deadline = time.time() + a.timeout
    try:
        while found < a.count and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            record = deserialize(msg.value(), SerializationContext(a.topic, MessageField.VALUE))
            if record.get("eventId") != a.event_id:
                continue
            if msg.key().decode() != a.event_id:
                print(f"key {msg.key()!r} is not the event id", file=sys.stderr)
                return 1
            print(json.dumps(record, default=str), flush=True)
            found += 1
    finally:
        consumer.close()
    if found < a.count:
        print(f"found {found} of {a.count} records for {a.event_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
