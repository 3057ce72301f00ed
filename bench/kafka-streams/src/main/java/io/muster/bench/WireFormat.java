package io.muster.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

/**
 * Confluent's wire format (magic byte 0, 4-byte big-endian schema id, Avro binary) with schemas
 * fetched from the registry's Confluent-compatible API by id, as muster's codec does. Confluent's
 * serde is not on Maven Central, so this is the few lines it would do for us.
 */
final class WireFormat {
  private final String registry;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
  private final ObjectMapper json = new ObjectMapper();
  private final Map<Integer, Schema> schemas = new ConcurrentHashMap<>();
  private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new ConcurrentHashMap<>();
  private final Map<Integer, GenericDatumWriter<GenericRecord>> writers = new ConcurrentHashMap<>();
  private BinaryDecoder decoder;
  private BinaryEncoder encoder;

  WireFormat(String registry) {
    this.registry = registry.replaceAll("/+$", "");
  }

  /** The schema registered under {@code id}, fetched once. */
  Schema schema(int id) {
    return schemas.computeIfAbsent(id, this::fetch);
  }

  private Schema fetch(int id) {
    var request = HttpRequest.newBuilder(URI.create(registry + "/schemas/ids/" + id))
        .timeout(Duration.ofSeconds(10)).GET().build();
    try {
      var answer = http.send(request, HttpResponse.BodyHandlers.ofString());
      if (answer.statusCode() != 200) {
        throw new IllegalStateException("registry answered " + answer.statusCode() + " for schema " + id + ": " + answer.body());
      }
      return new Schema.Parser().parse(json.readTree(answer.body()).get("schema").asText());
    } catch (IOException e) {
      throw new UncheckedIOException("fetching schema " + id + " from " + registry, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Why {@code bytes} is not a wire-format record, as muster's decode error would say. */
  static final class Undecodable extends Exception {
    Undecodable(String message, Throwable cause) {
      super(message, cause);
    }
  }

  /** Decodes with the writer's schema (the fields muster's bench topics carry never need resolution). */
  GenericRecord decode(byte[] bytes) throws Undecodable {
    if (bytes == null || bytes.length < 5 || bytes[0] != 0) {
      throw new Undecodable("not Confluent wire format (magic byte 0 and a schema id)", null);
    }
    int id = ByteBuffer.wrap(bytes, 1, 4).getInt();
    var reader = readers.computeIfAbsent(id, i -> new GenericDatumReader<>(schema(i)));
    try {
      decoder = DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, decoder);
      return reader.read(null, decoder);
    } catch (IOException | RuntimeException e) {
      throw new Undecodable("Avro decode with schema " + id + " failed: " + e, e);
    }
  }

  byte[] encode(int id, GenericRecord record) {
    var writer = writers.computeIfAbsent(id, i -> new GenericDatumWriter<>(schema(i)));
    var out = new ByteArrayOutputStream(256);
    out.write(0);
    out.write(id >>> 24);
    out.write(id >>> 16);
    out.write(id >>> 8);
    out.write(id);
    try {
      encoder = EncoderFactory.get().binaryEncoder(out, encoder);
      writer.write(record, encoder);
      encoder.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }
}
