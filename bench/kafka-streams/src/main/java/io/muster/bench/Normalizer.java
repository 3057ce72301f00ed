package io.muster.bench;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * A line-by-line mirror of muster's {@code s-attend/v1} normalizer
 * (processors/src/normalize/{mod,s_attend_v1,storable}.rs): missing fields default to 0 or
 * empty, present fields of the wrong type are errors, and what no stage downstream could store
 * is refused. Every refusal becomes a dead letter, as in muster. Known difference at the edges:
 * a key repeated in a body is refused here whatever the key (Jackson's strict duplicate
 * detection), where serde refuses only a known field twice; error texts differ in wording.
 */
final class Normalizer {
  static final String SCHEMA = "s-attend/v1";
  static final long EARLIEST = 946_684_800_000L;
  static final long MAX_AHEAD_MS = 24L * 60 * 60 * 1000;
  static final long MAX_COUNT = 1_000_000_000_000L;
  static final double MAX_THROUGHPUT = 1e9;
  private static final Set<String> DOWN = Set.of("down", "error", "failed", "offline");

  /** Why a snapshot could not be normalized: the dead letter's error. */
  static final class Refused extends Exception {
    Refused(String message) {
      super(message);
    }
  }

  record Gate(String id, String status, double throughput) {}

  record Alert(String id, String severity, String message) {}

  record Metrics(Long timestamp, long totalRegistered, long currentAttendees, long checkedIn,
      long checkedOut, List<Gate> gates, List<Alert> alerts) {
    double attendanceRate() {
      return totalRegistered <= 0 ? 0.0 : (double) currentAttendees / totalRegistered;
    }

    String status() {
      boolean gateDown = gates.stream().anyMatch(g -> DOWN.contains(g.status().toLowerCase(Locale.ROOT)));
      boolean critical = alerts.stream().anyMatch(a -> a.severity().equalsIgnoreCase("critical"));
      if (gateDown || critical) {
        return "degraded";
      }
      if (currentAttendees > 0 || gates.stream().anyMatch(g -> g.status().equalsIgnoreCase("open"))) {
        return "live";
      }
      return "idle";
    }
  }

  private final ObjectMapper json = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  Metrics normalize(int httpStatus, String dataSchema, String body, long fetchedAt, Long capacity) throws Refused {
    if (httpStatus < 200 || httpStatus >= 300) {
      throw new Refused("upstream answered HTTP " + httpStatus);
    }
    if (!SCHEMA.equals(dataSchema)) {
      throw new Refused("no normalizer for dataSchema \"" + dataSchema + "\"");
    }
    Metrics m = parse(body);
    String unstorable = storable(m, fetchedAt, capacity);
    if (unstorable != null) {
      throw new Refused("value cannot be stored: " + unstorable);
    }
    return m;
  }

  private static Refused invalid(String reason) {
    return new Refused("body is not valid " + SCHEMA + ": " + reason);
  }

  private Metrics parse(String body) throws Refused {
    JsonNode root;
    try {
      root = json.readTree(body);
    } catch (JsonProcessingException e) {
      throw invalid(e.getOriginalMessage());
    }
    JsonNode b = object(root, "the body");
    JsonNode participants = optionalObject(b, "participants");
    JsonNode attendance = optionalObject(b, "attendance");
    long total = count(participants, "total");
    long current = count(attendance, "current");
    long checkedIn = count(attendance, "checkedIn");
    long checkedOut = count(attendance, "checkedOut");
    Long timestamp = null;
    JsonNode t = b.get("timestamp");
    if (t != null && !t.isNull()) {
      if (!t.isTextual()) {
        throw invalid("timestamp is not a string");
      }
      try {
        timestamp = OffsetDateTime.parse(t.asText()).toInstant().toEpochMilli();
      } catch (DateTimeParseException e) {
        throw invalid("timestamp \"" + t.asText() + "\" is not RFC 3339: " + e.getMessage());
      }
    }
    String[] names = {"participants.total", "attendance.current", "attendance.checkedIn", "attendance.checkedOut"};
    long[] counts = {total, current, checkedIn, checkedOut};
    for (int i = 0; i < counts.length; i++) {
      if (counts[i] < 0) {
        throw invalid(names[i] + " is negative (" + counts[i] + ")");
      }
    }
    List<Gate> gates = new ArrayList<>();
    for (JsonNode g : array(b, "gates")) {
      object(g, "a gate");
      gates.add(new Gate(requiredText(g, "id"), text(g, "status"), number(g, "throughput")));
    }
    List<Alert> alerts = new ArrayList<>();
    for (JsonNode a : array(b, "alerts")) {
      object(a, "an alert");
      alerts.add(new Alert(requiredText(a, "id"), text(a, "severity"), text(a, "message")));
    }
    return new Metrics(timestamp, total, current, checkedIn, checkedOut, gates, alerts);
  }

  private static JsonNode object(JsonNode n, String what) throws Refused {
    if (n == null || !n.isObject()) {
      throw invalid(what + " is not an object");
    }
    return n;
  }

  private static JsonNode optionalObject(JsonNode parent, String field) throws Refused {
    JsonNode n = parent.get(field);
    return n == null ? json0() : object(n, field);
  }

  private static JsonNode json0() {
    return com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
  }

  private static Iterable<JsonNode> array(JsonNode parent, String field) throws Refused {
    JsonNode n = parent.get(field);
    if (n == null) {
      return List.of();
    }
    if (!n.isArray()) {
      throw invalid(field + " is not an array");
    }
    return n;
  }

  private static long count(JsonNode parent, String field) throws Refused {
    JsonNode n = parent.get(field);
    if (n == null) {
      return 0;
    }
    if (!n.isIntegralNumber() || !n.canConvertToLong()) {
      throw invalid(field + " is not a 64-bit integer");
    }
    return n.longValue();
  }

  private static double number(JsonNode parent, String field) throws Refused {
    JsonNode n = parent.get(field);
    if (n == null) {
      return 0.0;
    }
    if (!n.isNumber()) {
      throw invalid(field + " is not a number");
    }
    return n.doubleValue();
  }

  private static String text(JsonNode parent, String field) throws Refused {
    JsonNode n = parent.get(field);
    if (n == null) {
      return "";
    }
    if (!n.isTextual()) {
      throw invalid(field + " is not a string");
    }
    return n.asText();
  }

  private static String requiredText(JsonNode parent, String field) throws Refused {
    if (parent.get(field) == null) {
      throw invalid("missing field `" + field + "`");
    }
    return text(parent, field);
  }

  /** storable.rs: the first value no stage downstream could store, or null. */
  private static String storable(Metrics m, long fetchedAt, Long capacity) {
    String e = time("fetchedAt", fetchedAt, null);
    if (e == null && m.timestamp() != null) {
      e = time("timestamp", m.timestamp(), fetchedAt);
    }
    if (e == null) e = count("participants.total", m.totalRegistered());
    if (e == null) e = count("attendance.current", m.currentAttendees());
    if (e == null) e = count("attendance.checkedIn", m.checkedIn());
    if (e == null) e = count("attendance.checkedOut", m.checkedOut());
    if (e == null && capacity != null) e = count("capacity", capacity);
    for (int i = 0; e == null && i < m.gates().size(); i++) {
      Gate g = m.gates().get(i);
      e = nul("gates[" + i + "].id", g.id());
      if (e == null) e = nul("gates[" + i + "].status", g.status());
      if (e == null && (!Double.isFinite(g.throughput()) || g.throughput() < 0 || g.throughput() > MAX_THROUGHPUT)) {
        e = "gates[" + i + "].throughput " + g.throughput() + " is outside 0..=" + MAX_THROUGHPUT;
      }
    }
    for (int i = 0; e == null && i < m.alerts().size(); i++) {
      Alert a = m.alerts().get(i);
      e = nul("alerts[" + i + "].id", a.id());
      if (e == null) e = nul("alerts[" + i + "].severity", a.severity());
      if (e == null) e = nul("alerts[" + i + "].message", a.message());
    }
    return e;
  }

  private static String nul(String field, String value) {
    return value.indexOf('\0') >= 0 ? field + " contains a NUL character" : null;
  }

  private static String count(String field, long value) {
    return value < 0 || value > MAX_COUNT ? field + " " + value + " is outside 0..=" + MAX_COUNT : null;
  }

  private static String time(String field, long millis, Long reference) {
    if (millis < EARLIEST) {
      return field + " " + millis + " ms is before 2000";
    }
    if (reference != null && millis > reference + MAX_AHEAD_MS) {
      return field + " " + millis + " ms is more than a day ahead of the fetch";
    }
    return null;
  }
}
