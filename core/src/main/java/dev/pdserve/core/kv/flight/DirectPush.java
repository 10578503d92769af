package dev.pdserve.core.kv.flight;

import com.google.flatbuffers.FlatBufferBuilder;
import com.google.protobuf.ByteString;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.WireFormat;
import dev.pdserve.core.kv.KvLayout;
import io.grpc.Drainable;
import io.grpc.MethodDescriptor;
import io.grpc.protobuf.ProtoUtils;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.List;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.flight.grpc.AddWritableBuffer;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.flight.impl.FlightServiceGrpc;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.ipc.message.IpcOption;
import org.apache.arrow.vector.ipc.message.MessageSerializer;

/**
 * Writes the KV wire format as Flight DoPut messages without Flight's client-side copies: the
 * {@link KvTransferClient.SendPath#DIRECT} path. A record batch goes to gRPC as direct Netty
 * buffers that wrap the Arrow memory holding the rows (pool blocks themselves, when a layer is sent
 * from a paged cache), so the only copy on the way out is the kernel's.
 *
 * <p>(arrow-java 19's own zero-copy write puts the message header in a heap buffer; Netty then
 * copies every HTTP/2 frame of the message into a direct buffer before writing it.)
 */
final class DirectPush {
  private static final int INTS = 3;

  static final MethodDescriptor<Frame, Flight.PutResult> DO_PUT =
      MethodDescriptor.<Frame, Flight.PutResult>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName(FlightServiceGrpc.getDoPutMethod().getFullMethodName())
          .setRequestMarshaller(new FrameMarshaller())
          .setResponseMarshaller(ProtoUtils.marshaller(Flight.PutResult.getDefaultInstance()))
          .build();

  private DirectPush() {}

  /** One FlightData message as Netty buffers; owns them until gRPC has written them. */
  static final class Frame {
    final ByteBuf buf;
    private boolean taken;

    Frame(ByteBuf buf) {
      this.buf = buf;
    }

    /** Frees the buffers if gRPC never took the frame (the call failed before the send). */
    void releaseUnsent() {
      synchronized (this) {
        if (taken) {
          return;
        }
        taken = true;
      }
      buf.release();
    }

    synchronized boolean take() {
      if (taken) {
        return false;
      }
      taken = true;
      return true;
    }
  }

  /** The first message of a push: the descriptor and the schema. */
  static Frame schema(String transferId, KvLayout layout) {
    ByteBuffer header =
        MessageSerializer.serializeMetadata(KvWire.schema(layout), IpcOption.DEFAULT);
    Flight.FlightDescriptor d =
        Flight.FlightDescriptor.newBuilder()
            .setType(Flight.FlightDescriptor.DescriptorType.CMD)
            .setCmd(ByteString.copyFromUtf8(transferId))
            .build();
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      CodedOutputStream cos = CodedOutputStream.newInstance(out);
      cos.writeMessage(Flight.FlightData.FLIGHT_DESCRIPTOR_FIELD_NUMBER, d);
      cos.writeByteBuffer(
          Flight.FlightData.DATA_HEADER_FIELD_NUMBER,
          header.slice()); // writes capacity bytes: slice first
      cos.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    byte[] b = out.toByteArray();
    ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(b.length);
    buf.writeBytes(b);
    return new Frame(buf);
  }

  /**
   * A record batch of {@code rows} rows of one layer: {@code blocks[r]} and {@code tokens[r]} per
   * row, the KV bytes in {@code bodies} (Arrow buffers in row order, {@code rows × layerBytes} in
   * all; each is released once gRPC has written it).
   */
  static Frame batch(KvLayout layout, int layer, int first, int[] tokens, List<ArrowBuf> bodies) {
    int rows = tokens.length;
    long intBytes = rows * 4L;
    long intPadded = (intBytes + 7) & ~7L;
    long kvBytes = (long) rows * layout.layerBytes();
    long bodyLen = INTS * intPadded + kvBytes;

    FlatBufferBuilder fb = new FlatBufferBuilder(256);
    RecordBatch.startNodesVector(fb, INTS + 1);
    for (int i = INTS; i >= 0; i--) {
      FieldNode.createFieldNode(fb, rows, 0);
    }
    int nodes = fb.endVector();
    RecordBatch.startBuffersVector(fb, 2 * (INTS + 1));
    // Written back to front: kv data, kv validity (empty: no nulls), then the int columns.
    Buffer.createBuffer(fb, INTS * intPadded, kvBytes);
    Buffer.createBuffer(fb, INTS * intPadded, 0);
    for (int i = INTS - 1; i >= 0; i--) {
      Buffer.createBuffer(fb, i * intPadded, intBytes);
      Buffer.createBuffer(fb, i * intPadded, 0);
    }
    int buffers = fb.endVector();
    RecordBatch.startRecordBatch(fb);
    RecordBatch.addLength(fb, rows);
    RecordBatch.addNodes(fb, nodes);
    RecordBatch.addBuffers(fb, buffers);
    int rb = RecordBatch.endRecordBatch(fb);
    ByteBuffer header =
        MessageSerializer.serializeMessage(
            fb, MessageHeader.RecordBatch, rb, bodyLen, IpcOption.DEFAULT);

    ByteArrayOutputStream out = new ByteArrayOutputStream(header.remaining() + 16);
    try {
      CodedOutputStream cos = CodedOutputStream.newInstance(out);
      cos.writeByteBuffer(
          Flight.FlightData.DATA_HEADER_FIELD_NUMBER,
          header.slice()); // writes capacity bytes: slice first
      cos.writeTag(Flight.FlightData.DATA_BODY_FIELD_NUMBER, WireFormat.WIRETYPE_LENGTH_DELIMITED);
      cos.writeUInt64NoTag(bodyLen);
      cos.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    byte[] prefix = out.toByteArray();
    ByteBuf head =
        PooledByteBufAllocator.DEFAULT.directBuffer((int) (prefix.length + INTS * intPadded));
    head.writeBytes(prefix);
    for (int c = 0; c < INTS; c++) {
      for (int r = 0; r < rows; r++) {
        head.writeIntLE(c == 0 ? layer : c == 1 ? first + r : tokens[r]);
      }
      head.writeZero((int) (intPadded - intBytes));
    }
    CompositeByteBuf frame = new ArrowBackedComposite(bodies);
    frame.addComponent(true, head);
    for (ArrowBuf b : bodies) {
      frame.addComponent(true, Unpooled.wrappedBuffer(b.nioBuffer(0, (int) b.capacity())));
    }
    return new Frame(frame);
  }

  /** A direct composite that releases the Arrow memory behind its components when freed. */
  private static final class ArrowBackedComposite extends CompositeByteBuf {
    private final List<ArrowBuf> backing;
    private boolean released;

    ArrowBackedComposite(List<ArrowBuf> backing) {
      // No component limit: Netty would otherwise consolidate (copy) components.
      super(PooledByteBufAllocator.DEFAULT, true, Integer.MAX_VALUE);
      this.backing = backing;
    }

    @Override
    protected void deallocate() {
      super.deallocate();
      if (!released) {
        released = true;
        backing.forEach(ArrowBuf::close);
      }
    }
  }

  private static final class FrameMarshaller implements MethodDescriptor.Marshaller<Frame> {
    @Override
    public InputStream stream(Frame value) {
      if (!value.take()) {
        throw new IllegalStateException("a KV frame was sent twice or after it was released");
      }
      return new FrameStream(value.buf);
    }

    @Override
    public Frame parse(InputStream stream) {
      throw new UnsupportedOperationException("the KV push only sends frames");
    }
  }

  /**
   * Hands the frame's buffers to gRPC's buffer chain (retained, not copied). Deliberately not
   * {@code KnownLength}: gRPC only takes buffers into its chain for streams of unknown length.
   */
  private static final class FrameStream extends InputStream implements Drainable {
    private final ByteBuf buf;
    private boolean closed;

    FrameStream(ByteBuf buf) {
      this.buf = buf;
    }

    @Override
    public int drainTo(OutputStream target) throws IOException {
      int n = buf.readableBytes();
      AddWritableBuffer.add(buf, target, true); // retains buf for gRPC, or copies it
      return n;
    }

    @Override
    public int read() {
      return buf.isReadable() ? buf.readByte() & 0xff : -1;
    }

    @Override
    public int read(byte[] b, int off, int len) {
      if (!buf.isReadable()) {
        return -1;
      }
      int n = Math.min(len, buf.readableBytes());
      buf.readBytes(b, off, n);
      return n;
    }

    @Override
    public int available() {
      return buf.readableBytes();
    }

    @Override
    public void close() {
      if (!closed) {
        closed = true;
        buf.release();
      }
    }
  }
}
