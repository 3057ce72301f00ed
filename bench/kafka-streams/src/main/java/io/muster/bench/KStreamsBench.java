package io.muster.bench;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * The Kafka Streams side of {@code muster bench kafka-streams}: muster's {@code normalize} and
 * {@code gate_throughput_1m} processors written as a Kafka Streams user would write them, one
 * job per run, under exactly_once_v2 (muster's processors are exactly-once too).
 *
 * <p>Arguments are {@code --name value} pairs: bootstrap, registry (Confluent-compatible base
 * URL), job (normalize or window), input, output, dead-letters, output-schema-id,
 * dead-letter-schema-id, application-id, state-dir, allowed-lateness-ms. Prints RUNNING once
 * the application runs, and closes cleanly on SIGTERM.
 */
public final class KStreamsBench {
  private KStreamsBench() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
      }
      args.put(argv[i].substring(2), argv[i + 1]);
    }
    String job = need(args, "job");
    var builder = new StreamsBuilder();
    switch (job) {
      case "normalize" -> normalize(builder, args);
      case "window" -> window(builder, args);
      default -> throw new IllegalArgumentException("--job is normalize or window, not " + job);
    }

    var props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, need(args, "application-id"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(args, "bootstrap"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.STATE_DIR_CONFIG, need(args, "state-dir"));
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
    // The single-broker development cluster: internal topics cannot have 3 replicas.
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    // Everything else is Kafka Streams' default (one stream thread, commit every 100 ms under
    // exactly-once, a 10 MB record cache).

    var streams = new KafkaStreams(builder.build(), props);
    var closed = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING) {
        System.out.println("RUNNING");
        System.out.flush();
      }
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
        closed.countDown();
      }
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      closed.countDown();
    }));
    streams.start();
    closed.await();
  }

  private static String need(Map<String, String> args, String name) {
    String v = args.get(name);
    if (v == null) {
      throw new IllegalArgumentException("missing --" + name);
    }
    return v;
  }

  /** A record's fate: an output value or a dead letter, both already in wire format. */
  private record Outcome(byte[] output, byte[] deadLetter) {}

  /** What `muster process` writes to the dead-letter topic, mirrored field by field. */
  private static GenericRecord deadLetter(Schema schema, String stage, String error, FixedKeyProcessorContext<?, ?> ctx,
      String eventId, byte[] payload) {
    var meta = ctx.recordMetadata().orElseThrow();
    var dl = new GenericData.Record(schema);
    dl.put("eventId", eventId);
    dl.put("stage", stage);
    dl.put("error", error);
    dl.put("sourceTopic", meta.topic());
    dl.put("sourcePartition", meta.partition());
    dl.put("sourceOffset", meta.offset());
    dl.put("payload", ByteBuffer.wrap(payload));
    dl.put("failedAt", System.currentTimeMillis());
    return dl;
  }

  /** Sends the dead letters to their topic and returns the outputs. */
  private static KStream<String, byte[]> deadLettersOut(KStream<String, Outcome> outcomes, Map<String, String> args) {
    Map<String, KStream<String, Outcome>> fates = outcomes.split(Named.as("fate-"))
        .branch((k, o) -> o.deadLetter() != null, Branched.as("dead"))
        .defaultBranch(Branched.as("ok"));
    fates.get("fate-dead").mapValues(Outcome::deadLetter)
        .to(need(args, "dead-letters"), Produced.with(Serdes.String(), Serdes.ByteArray()));
    return fates.get("fate-ok").mapValues(Outcome::output);
  }

  /** processors/src/normalize/processor.rs: raw snapshot in, normalized metrics or a dead letter out. */
  private static void normalize(StreamsBuilder builder, Map<String, String> args) {
    String registry = need(args, "registry");
    int outId = Integer.parseInt(need(args, "output-schema-id"));
    int dlId = Integer.parseInt(need(args, "dead-letter-schema-id"));
    KStream<String, byte[]> raw = builder.stream(need(args, "input"), Consumed.with(Serdes.String(), Serdes.ByteArray()));
    KStream<String, Outcome> outcomes = raw.processValues(() -> new FixedKeyProcessor<String, byte[], Outcome>() {
      private final WireFormat wire = new WireFormat(registry);
      private final Normalizer normalizer = new Normalizer();
      private FixedKeyProcessorContext<String, Outcome> ctx;
      private Schema out;
      private Schema gate;
      private Schema alert;
      private Schema source;
      private Schema dl;

      @Override
      public void init(FixedKeyProcessorContext<String, Outcome> context) {
        ctx = context;
        out = wire.schema(outId);
        gate = out.getField("gateActivity").schema().getElementType();
        alert = out.getField("alerts").schema().getElementType();
        source = out.getField("source").schema();
        dl = wire.schema(dlId);
      }

      @Override
      public void process(FixedKeyRecord<String, byte[]> record) {
        ctx.forward(record.withValue(one(record.value())));
      }

      private Outcome one(byte[] bytes) {
        GenericRecord r;
        try {
          r = wire.decode(bytes);
        } catch (WireFormat.Undecodable e) {
          return new Outcome(null, wire.encode(dlId, deadLetter(dl, "decode", e.getMessage(), ctx, null, bytes)));
        }
        String eventId = r.get("eventId").toString();
        long fetchedAt = (Long) r.get("fetchedAt");
        Long capacity = (Long) r.get("capacity");
        String body = r.get("body").toString();
        Normalizer.Metrics m;
        try {
          m = normalizer.normalize((Integer) r.get("httpStatus"), r.get("dataSchema").toString(), body, fetchedAt, capacity);
        } catch (Normalizer.Refused e) {
          byte[] payload = body.getBytes(StandardCharsets.UTF_8);
          return new Outcome(null, wire.encode(dlId, deadLetter(dl, "normalize", e.getMessage(), ctx, eventId, payload)));
        }
        var meta = ctx.recordMetadata().orElseThrow();
        var src = new GenericData.Record(source);
        src.put("topic", meta.topic());
        src.put("partition", meta.partition());
        src.put("offset", meta.offset());
        var gates = new GenericData.Array<GenericRecord>(m.gates().size(), out.getField("gateActivity").schema());
        for (var g : m.gates()) {
          var x = new GenericData.Record(gate);
          x.put("gateId", g.id());
          x.put("status", g.status());
          x.put("throughput", g.throughput());
          gates.add(x);
        }
        var alerts = new GenericData.Array<GenericRecord>(m.alerts().size(), out.getField("alerts").schema());
        for (var a : m.alerts()) {
          var x = new GenericData.Record(alert);
          x.put("id", a.id());
          x.put("severity", a.severity());
          x.put("message", a.message());
          alerts.add(x);
        }
        var n = new GenericData.Record(out);
        n.put("eventId", eventId);
        n.put("timestamp", m.timestamp() != null ? m.timestamp() : fetchedAt);
        n.put("fetchedAt", fetchedAt);
        n.put("totalRegistered", m.totalRegistered());
        n.put("currentAttendees", m.currentAttendees());
        n.put("checkedIn", m.checkedIn());
        n.put("checkedOut", m.checkedOut());
        n.put("attendanceRate", m.attendanceRate());
        n.put("gateActivity", gates);
        n.put("alerts", alerts);
        n.put("status", m.status());
        n.put("source", src);
        n.put("capacity", capacity);
        return new Outcome(wire.encode(outId, n), null);
      }
    });
    deadLettersOut(outcomes, args).to(need(args, "output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
  }

  /** Separates the event, the gate and the direction of a check-in on its way to the window. */
  private static final String SEP = "\u001f";

  /** One window's running counts, as gate_throughput_1m's columns. */
  private record WindowRow(String gateId, long start, long end, long entries, long exits) {}

  /**
   * processors/sql/gate_throughput_1m.sql: entries and exits per event, gate and minute of scan
   * time. Records muster would refuse (implausible times, later than the allowed lateness) go
   * to the dead letters by the same rule (processors/src/sql/streams.rs).
   */
  private static void window(StreamsBuilder builder, Map<String, String> args) {
    String registry = need(args, "registry");
    int outId = Integer.parseInt(need(args, "output-schema-id"));
    int dlId = Integer.parseInt(need(args, "dead-letter-schema-id"));
    long allowedLateness = Long.parseLong(need(args, "allowed-lateness-ms"));
    String stage = "window:gate_throughput_1m";
    KStream<String, byte[]> raw = builder.stream(need(args, "input"), Consumed.with(Serdes.String(), Serdes.ByteArray()));
    KStream<String, Outcome> outcomes = raw.processValues(() -> new FixedKeyProcessor<String, byte[], Outcome>() {
      private final WireFormat wire = new WireFormat(registry);
      private FixedKeyProcessorContext<String, Outcome> ctx;
      private Schema dl;

      @Override
      public void init(FixedKeyProcessorContext<String, Outcome> context) {
        ctx = context;
        dl = wire.schema(dlId);
      }

      @Override
      public void process(FixedKeyRecord<String, byte[]> record) {
        GenericRecord c;
        try {
          c = wire.decode(record.value());
        } catch (WireFormat.Undecodable e) {
          ctx.forward(record.withValue(new Outcome(null,
              wire.encode(dlId, deadLetter(dl, stage, e.getMessage(), ctx, null, record.value())))));
          return;
        }
        String eventId = c.get("eventId").toString();
        long scanned = (Long) c.get("scannedAt");
        long received = (Long) c.get("receivedAt");
        String refused = refusal(scanned, received, allowedLateness);
        if (refused != null) {
          ctx.forward(record.withValue(new Outcome(null,
              wire.encode(dlId, deadLetter(dl, stage, refused, ctx, eventId, record.value())))));
          return;
        }
        // The value carries the grouping key and the direction; the record's time becomes the scan time.
        String value = eventId + SEP + c.get("gateId") + SEP + c.get("direction");
        ctx.forward(record.withValue(new Outcome(value.getBytes(StandardCharsets.UTF_8), null)).withTimestamp(scanned));
      }
    });

    Serde<long[]> counts = Serdes.serdeFrom(
        (topic, c) -> ByteBuffer.allocate(16).putLong(c[0]).putLong(c[1]).array(),
        (topic, b) -> {
          var buf = ByteBuffer.wrap(b);
          return new long[] {buf.getLong(), buf.getLong()};
        });
    deadLettersOut(outcomes, args)
        .map((k, v) -> {
          String s = new String(v, StandardCharsets.UTF_8);
          int last = s.lastIndexOf(SEP);
          return KeyValue.pair(s.substring(0, last), s.substring(last + 1));
        })
        .groupByKey(Grouped.with("gates", Serdes.String(), Serdes.String()))
        // Lateness is decided above by muster's rule (arrival time against scan time). Kafka
        // Streams' own grace is measured in stream time, the latest scan time its task has seen:
        // while a backlog is read, partitions run ahead of one another and a grace of the
        // allowed lateness left 22,627 of 100,000 check-ins uncounted in a first run, so it
        // is set beyond any backlog here.
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofDays(1)))
        .aggregate(() -> new long[2], (key, direction, c) -> {
          if (direction.equals("in")) {
            c[0]++;
          } else if (direction.equals("out")) {
            c[1]++;
          }
          return c;
        }, Materialized.with(Serdes.String(), counts))
        .toStream()
        .map((windowed, c) -> {
          String[] eventGate = windowed.key().split(SEP, 2);
          return KeyValue.pair(eventGate[0],
              new WindowRow(eventGate[1], windowed.window().start(), windowed.window().end(), c[0], c[1]));
        })
        .processValues(() -> new FixedKeyProcessor<String, WindowRow, byte[]>() {
          private final WireFormat wire = new WireFormat(registry);
          private FixedKeyProcessorContext<String, byte[]> ctx;
          private Schema out;

          @Override
          public void init(FixedKeyProcessorContext<String, byte[]> context) {
            ctx = context;
            out = wire.schema(outId);
          }

          @Override
          public void process(FixedKeyRecord<String, WindowRow> record) {
            WindowRow w = record.value();
            var r = new GenericData.Record(out);
            r.put("eventId", record.key());
            r.put("gateId", w.gateId());
            r.put("windowStart", w.start());
            r.put("windowEnd", w.end());
            r.put("entries", w.entries());
            r.put("exits", w.exits());
            ctx.forward(record.withValue(wire.encode(outId, r)));
          }
        })
        .to(need(args, "output"), Produced.with(Serdes.String(), Serdes.ByteArray()));
  }

  /** streams.rs: implausible times first, then lateness against the arrival time. */
  static String refusal(long eventMs, long arrivedMs, long allowedMs) {
    final long earliest = 946_684_800_000L;
    final long latest = 7_258_118_400_000L;
    if (eventMs < earliest || eventMs >= latest) {
      return "implausible event time: " + eventMs + " ms is outside 2000-01-01..2200-01-01 UTC";
    }
    if (arrivedMs < earliest || arrivedMs >= latest) {
      return "implausible arrival time: " + arrivedMs + " ms is outside 2000-01-01..2200-01-01 UTC";
    }
    long lateness = arrivedMs - eventMs;
    if (lateness > allowedMs) {
      return String.format("late: arrived %.1f s after its event time, beyond the allowed lateness of %.1f s",
          lateness / 1000.0, allowedMs / 1000.0);
    }
    return null;
  }
}
