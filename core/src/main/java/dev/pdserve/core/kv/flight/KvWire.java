package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.apache.arrow.flight.FlightDescriptor;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The KV transfer's wire format (see the package documentation). One DoPut per stream; the
 * descriptor is a command holding the transfer id in UTF-8; every row of every record batch is one
 * layer of one block of the transfer.
 */
final class KvWire {
  static final String LAYER = "layer";
  static final String BLOCK = "block";
  static final String TOKENS = "tokens";
  static final String KV = "kv";

  static final String FORMAT = "pdserve.kv.format";

  /** The format before the KV dtype was configurable (always fp32): refused, with a reason. */
  static final String FORMAT_V1 = "v1 fp32-le [K,V][kv_head][slot][head_dim]";

  /** Elements of {@link #DTYPE} (fp32, fp16 or bf16), little-endian. */
  static final String FORMAT_V2 = "v2 dtype-le [K,V][kv_head][slot][head_dim]";

  static final String DTYPE = "pdserve.kv.dtype";
  static final String BLOCK_SIZE = "pdserve.kv.block_size";
  static final String LAYERS = "pdserve.kv.layers";
  static final String KV_HEADS = "pdserve.kv.kv_heads";
  static final String HEAD_DIM = "pdserve.kv.head_dim";
  static final String ELEMENT_BYTES = "pdserve.kv.element_bytes";

  private KvWire() {}

  static Schema schema(KvLayout layout) {
    FieldType int32 = FieldType.notNullable(new ArrowType.Int(32, true));
    return new Schema(
        List.of(
            new Field(LAYER, int32, null),
            new Field(BLOCK, int32, null),
            new Field(TOKENS, int32, null),
            new Field(
                KV,
                FieldType.notNullable(new ArrowType.FixedSizeBinary(layout.layerBytes())),
                null)),
        Map.of(
            FORMAT, FORMAT_V2,
            DTYPE, layout.dtype().configName(),
            BLOCK_SIZE, Integer.toString(layout.blockSize()),
            LAYERS, Integer.toString(layout.layers()),
            KV_HEADS, Integer.toString(layout.kvHeads()),
            HEAD_DIM, Integer.toString(layout.headDim()),
            ELEMENT_BYTES, Integer.toString(layout.elementBytes())));
  }

  /**
   * Null when {@code schema} is ours for {@code layout}; otherwise what differs, for a person: the
   * wire format first (an older sender), then the KV dtype, then the columns and the shape.
   */
  static String mismatch(Schema schema, KvLayout layout) {
    Schema want = schema(layout);
    Map<String, String> got = schema.getCustomMetadata();
    String format = got == null ? null : got.get(FORMAT);
    if (!FORMAT_V2.equals(format)) {
      return "KV wire format mismatch: this node reads '"
          + FORMAT_V2
          + "', the sender sent "
          + (format == null ? "no " + FORMAT : "'" + format + "'")
          + (FORMAT_V1.equals(format) ? " (an older pdserve)" : "")
          + "; run the same pdserve version on every worker";
    }
    String dtype = got.get(DTYPE);
    if (!layout.dtype().configName().equals(dtype)) {
      return "KV dtype mismatch: this node stores "
          + layout.dtype().configName()
          + " KV, the sender sends "
          + dtype
          + "; set pdserve.kv.dtype the same on every worker";
    }
    if (!want.getFields().equals(schema.getFields())) {
      return "KV batches must have the columns " + want.getFields() + ", got " + schema.getFields();
    }
    for (Map.Entry<String, String> e : want.getCustomMetadata().entrySet()) {
      String value = got.get(e.getKey());
      if (!e.getValue().equals(value)) {
        return "KV layout mismatch: this node has "
            + e.getKey()
            + "="
            + e.getValue()
            + ", the sender "
            + value;
      }
    }
    return null;
  }

  static FlightDescriptor descriptor(String transferId) {
    return FlightDescriptor.command(transferId.getBytes(StandardCharsets.UTF_8));
  }

  /** The transfer id of a DoPut, or null when the descriptor is not a command. */
  static String transferId(FlightDescriptor d) {
    return d != null && d.isCommand() ? new String(d.getCommand(), StandardCharsets.UTF_8) : null;
  }

  /** A DoPut's acknowledgement: layers complete on the receiver, and layers expected. */
  static byte[] ack(int layersDone, int layers) {
    return ByteBuffer.allocate(8)
        .order(ByteOrder.LITTLE_ENDIAN)
        .putInt(layersDone)
        .putInt(layers)
        .array();
  }

  static int[] parseAck(ByteBuffer b) {
    if (b.remaining() != 8) {
      return null;
    }
    ByteBuffer le = b.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    return new int[] {le.getInt(), le.getInt()};
  }
}
