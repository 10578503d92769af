package dev.pdserve.core.kv.flight;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * The Arrow IPC message header of a FlightData message as {@link DirectPut} reads it from a sender:
 * decoded whole, before any of the body is read. A flatbuffer is read lazily, field by field, and a
 * sender's bytes may be anything; decoding it here at once makes a malformed header the sender's
 * error (INVALID_ARGUMENT) instead of an exception midway through the body.
 *
 * @param type the {@link MessageHeader} type
 * @param schema the schema, for a schema message
 * @param batch the record batch's values, for a record batch message
 */
record IpcHeader(byte type, Schema schema, BatchHeader batch) {
  /**
   * A record batch header's values. The field nodes and buffers are read only when there are as
   * many as a KV batch has ({@code nodeCount} and {@code bufferCount} say how many were declared).
   */
  record BatchHeader(
      long rows,
      boolean compressed,
      int nodeCount,
      int bufferCount,
      long[][] nodes, // [node] -> {length, null count}
      long[][] buffers) {} // [buffer] -> {offset, length}

  /**
   * Decodes {@code header}, reading field nodes and buffers of a record batch that declares {@code
   * fields} columns of 2 buffers.
   *
   * @throws KvTransferException INVALID_ARGUMENT when the bytes are no IPC message header
   */
  static IpcHeader decode(byte[] header, int fields) {
    try {
      Message m = Message.getRootAsMessage(ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN));
      byte type = m.headerType();
      if (type == MessageHeader.Schema) {
        return new IpcHeader(type, MessageSerializer.deserializeSchema(m), null);
      }
      if (type == MessageHeader.RecordBatch) {
        RecordBatch rb = (RecordBatch) m.header(new RecordBatch());
        if (rb == null) {
          throw new IllegalArgumentException("a record batch message without its header");
        }
        return new IpcHeader(type, null, batch(rb, fields));
      }
      return new IpcHeader(type, null, null);
    } catch (RuntimeException e) {
      throw new KvTransferException(
          FlightStatusCode.INVALID_ARGUMENT,
          "KV transfer: a FlightData header is not a valid Arrow IPC message (" + e + ")");
    }
  }

  /** The message type's name, for errors; a sender may send any byte there. */
  String typeName() {
    return type >= 0 && type < MessageHeader.names.length
        ? MessageHeader.name(type)
        : "unknown (" + type + ")";
  }

  private static BatchHeader batch(RecordBatch rb, int fields) {
    int nodeCount = rb.nodesLength();
    int bufferCount = rb.buffersLength();
    long[][] nodes = null;
    long[][] buffers = null;
    if (nodeCount == fields && bufferCount == 2 * fields) {
      nodes = new long[fields][];
      FieldNode node = new FieldNode();
      for (int i = 0; i < fields; i++) {
        rb.nodes(node, i);
        nodes[i] = new long[] {node.length(), node.nullCount()};
      }
      buffers = new long[2 * fields][];
      Buffer buf = new Buffer();
      for (int i = 0; i < 2 * fields; i++) {
        rb.buffers(buf, i);
        buffers[i] = new long[] {buf.offset(), buf.length()};
      }
    }
    return new BatchHeader(
        rb.length(), rb.compression() != null, nodeCount, bufferCount, nodes, buffers);
  }
}
