package dev.pdserve.core.kv.flight;

import com.google.flatbuffers.FlatBufferBuilder;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.flatbuf.BodyCompression;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.CompressionType;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.MetadataVersion;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Encodes the KV wire format's FlightData messages by hand, as any Flight client would send them,
 * with every field a test may want to get wrong left open: a schema message, and record batches
 * whose header (row count, field nodes, buffer offsets and lengths, compression) is built from
 * values the caller may change after {@link KvBatch#of} laid them out consistently.
 */
final class KvFlightData {
  /** Columns of a KV batch: layer, block, tokens, kv (each a validity and a data buffer). */
  static final int COLUMNS = 4;

  private KvFlightData() {}

  /** One row: one layer of one block, its kv bytes all {@code fill}. */
  record Row(int layer, int block, int tokens, byte fill) {}

  /** A FlightData message; any part may be null (left out). */
  static byte[] message(
      Flight.FlightDescriptor descriptor, byte[] header, byte[] appMetadata, byte[] body) {
    Flight.FlightData.Builder b = Flight.FlightData.newBuilder();
    if (descriptor != null) {
      b.setFlightDescriptor(descriptor);
    }
    if (header != null) {
      b.setDataHeader(ByteString.copyFrom(header));
    }
    if (appMetadata != null) {
      b.setAppMetadata(ByteString.copyFrom(appMetadata));
    }
    if (body != null) {
      b.setDataBody(ByteString.copyFrom(body));
    }
    return b.build().toByteArray();
  }

  /** The descriptor a sender of transfer {@code id} puts on its first message. */
  static Flight.FlightDescriptor command(String id) {
    return Flight.FlightDescriptor.newBuilder()
        .setType(Flight.FlightDescriptor.DescriptorType.CMD)
        .setCmd(ByteString.copyFromUtf8(id))
        .build();
  }

  /** The IPC message header announcing {@code schema}. */
  static byte[] schemaHeader(Schema schema) {
    ByteBuffer b = MessageSerializer.serializeMetadata(schema);
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }

  /**
   * One record batch: the values of its IPC header (public, to be changed) and its body. {@link
   * #of} lays the buffers out as Arrow's writers do (8-byte aligned, validity buffers empty).
   */
  static final class KvBatch {
    long length;
    final long[][] nodes = new long[COLUMNS][2]; // [column] -> {length, null count}
    final long[][] buffers = new long[2 * COLUMNS][2]; // [buffer] -> {offset, length}
    boolean compressed;
    byte[] body;

    static KvBatch of(List<Row> rows, int rowBytes) {
      KvBatch b = new KvBatch();
      int n = rows.size();
      b.length = n;
      long[] sizes = {4L * n, 4L * n, 4L * n, (long) rowBytes * n};
      long pos = 0;
      for (int c = 0; c < COLUMNS; c++) {
        b.nodes[c] = new long[] {n, 0};
        b.buffers[2 * c] = new long[] {pos, 0};
        b.buffers[2 * c + 1] = new long[] {pos, sizes[c]};
        pos = align8(pos + sizes[c]);
      }
      ByteBuffer body = ByteBuffer.allocate((int) pos).order(ByteOrder.LITTLE_ENDIAN);
      for (int r = 0; r < n; r++) {
        Row row = rows.get(r);
        body.putInt((int) b.buffers[1][0] + 4 * r, row.layer());
        body.putInt((int) b.buffers[3][0] + 4 * r, row.block());
        body.putInt((int) b.buffers[5][0] + 4 * r, row.tokens());
        int kv = (int) b.buffers[7][0] + r * rowBytes;
        Arrays.fill(body.array(), kv, kv + rowBytes, row.fill());
      }
      b.body = body.array();
      return b;
    }

    /** The IPC message header for these values. */
    byte[] header() {
      FlatBufferBuilder fb = new FlatBufferBuilder(256);
      int compression = 0;
      if (compressed) {
        compression =
            BodyCompression.createBodyCompression(fb, CompressionType.LZ4_FRAME, (byte) 0);
      }
      RecordBatch.startNodesVector(fb, nodes.length);
      for (int i = nodes.length - 1; i >= 0; i--) {
        FieldNode.createFieldNode(fb, nodes[i][0], nodes[i][1]);
      }
      int nodesAt = fb.endVector();
      RecordBatch.startBuffersVector(fb, buffers.length);
      for (int i = buffers.length - 1; i >= 0; i--) {
        Buffer.createBuffer(fb, buffers[i][0], buffers[i][1]);
      }
      int buffersAt = fb.endVector();
      RecordBatch.startRecordBatch(fb);
      RecordBatch.addLength(fb, length);
      RecordBatch.addNodes(fb, nodesAt);
      RecordBatch.addBuffers(fb, buffersAt);
      if (compressed) {
        RecordBatch.addCompression(fb, compression);
      }
      int batch = RecordBatch.endRecordBatch(fb);
      int message =
          Message.createMessage(
              fb, MetadataVersion.V5, MessageHeader.RecordBatch, batch, body.length, 0);
      fb.finish(message);
      return fb.sizedByteArray();
    }
  }

  private static long align8(long n) {
    return (n + 7) & ~7L;
  }
}
