package dev.pdserve.core.kv.flight;

import com.google.protobuf.ByteString;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.kv.KvBlockPool;
import io.grpc.Detachable;
import io.grpc.HasByteBuffer;
import io.grpc.MethodDescriptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.ExecutorService;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flight.FlightGrpcUtils;
import org.apache.arrow.flight.FlightProducer;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.auth.ServerAuthHandler;
import org.apache.arrow.flight.grpc.StatusUtils;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.flight.impl.FlightServiceGrpc;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * DoPut that copies each row straight from gRPC's receive buffers into its pool block: the {@link
 * KvTransferServer.ReceivePath#DIRECT} path. It speaks the Flight protocol (FlightData messages
 * holding Arrow IPC record batches, any Flight client can push), but parses each message itself
 * instead of through Flight's {@code FlightStream}, which in arrow-java 19 copies every body into a
 * fresh heap array and then into Arrow memory before the row can be copied into the pool. Here a
 * row costs one copy per transport buffer it spans.
 *
 * <p>Every other Flight method is served by the {@link FlightProducer} as usual.
 */
final class DirectPut implements StreamObserver<DirectPut.Frame> {
  private static final Logger LOG = LogManager.getLogger(DirectPut.class);

  private static final int DESCRIPTOR = 1;
  private static final int DATA_HEADER = 2;
  private static final int DATA_BODY = 1000;
  private static final int FIELDS = 4;

  /** The Flight service with DoPut replaced by this class. */
  @SuppressWarnings("deprecation") // ServerAuthHandler.NO_OP: what FlightServer itself passes
  static ServerServiceDefinition service(
      BufferAllocator allocator,
      FlightProducer producer,
      ExecutorService executor,
      KvReceiver receiver) {
    ServerServiceDefinition flight =
        FlightGrpcUtils.createFlightService(allocator, producer, ServerAuthHandler.NO_OP, executor)
            .bindService();
    String doPut = FlightServiceGrpc.getDoPutMethod().getFullMethodName();
    ServerServiceDefinition.Builder b =
        ServerServiceDefinition.builder(flight.getServiceDescriptor().getName());
    for (ServerMethodDefinition<?, ?> m : flight.getMethods()) {
      if (!m.getMethodDescriptor().getFullMethodName().equals(doPut)) {
        b.addMethod(m);
      }
    }
    MethodDescriptor<Frame, Flight.PutResult> method =
        MethodDescriptor.<Frame, Flight.PutResult>newBuilder()
            .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
            .setFullMethodName(doPut)
            .setRequestMarshaller(new FrameMarshaller())
            .setResponseMarshaller(ProtoUtils.marshaller(Flight.PutResult.getDefaultInstance()))
            .build();
    b.addMethod(
        method, ServerCalls.asyncBidiStreamingCall(response -> new DirectPut(receiver, response)));
    return b.build();
  }

  /** One FlightData message, still in gRPC's buffers (detached from the call, owned here). */
  static final class Frame implements AutoCloseable {
    final InputStream in;

    Frame(InputStream in) {
      this.in = in;
    }

    @Override
    public void close() {
      try {
        in.close();
      } catch (IOException e) {
        // releasing transport buffers does not fail
      }
    }
  }

  private static final class FrameMarshaller implements MethodDescriptor.Marshaller<Frame> {
    @Override
    public InputStream stream(Frame value) {
      throw new UnsupportedOperationException("the KV DoPut only receives frames");
    }

    @Override
    public Frame parse(InputStream stream) {
      if (stream instanceof Detachable d) {
        return new Frame(d.detach()); // takes the buffers without copying them
      }
      try {
        return new Frame(new ByteArrayInputStream(stream.readAllBytes()));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  private final KvReceiver receiver;
  private final KvBlockPool pool;
  private final int rowBytes;
  private final StreamObserver<Flight.PutResult> response;
  private final byte[] scratch = new byte[64 << 10];
  private boolean started;
  private boolean schemaSeen;
  private IncomingTransfer transfer; // null after start: a completed transfer, acknowledged only
  private boolean failed;
  private boolean zeroCopy; // of the message being read

  private DirectPut(KvReceiver receiver, StreamObserver<Flight.PutResult> response) {
    this.receiver = receiver;
    this.pool = receiver.pool();
    this.rowBytes = receiver.layout().layerBytes();
    this.response = response;
  }

  @Override
  public void onNext(Frame frame) {
    try (frame) {
      if (!failed) {
        read(frame.in);
      }
    } catch (KvTransferException e) {
      failed = true;
      response.onError(StatusUtils.toGrpcStatus(e.toFlight().status()).asRuntimeException());
    } catch (EOFException e) {
      failed = true;
      response.onError(
          Status.INVALID_ARGUMENT
              .withDescription("KV transfer: a FlightData message ends early: " + e.getMessage())
              .asRuntimeException());
    } catch (IOException e) {
      // The message is in memory: reading it fails only when its protobuf is malformed.
      failed = true;
      response.onError(
          Status.INVALID_ARGUMENT
              .withDescription("KV transfer: a malformed FlightData message: " + e.getMessage())
              .asRuntimeException());
    } catch (RuntimeException e) {
      failed = true;
      LOG.error(
          "KV transfer '{}' failed on the receiving side",
          transfer == null ? "?" : transfer.id(),
          e);
      response.onError(
          Status.INTERNAL
              .withDescription("KV transfer: " + GrpcErrors.describe(e))
              .withCause(e)
              .asRuntimeException());
    }
  }

  @Override
  public void onError(Throwable t) {
    // The sender went away; the transfer stays pending for a retry until the decode node gives up.
  }

  @Override
  public void onCompleted() {
    if (failed) {
      return;
    }
    if (!started) {
      response.onError(
          Status.INVALID_ARGUMENT
              .withDescription("KV transfer: an empty DoPut names no transfer")
              .asRuntimeException());
      return;
    }
    response.onNext(
        Flight.PutResult.newBuilder()
            .setAppMetadata(ByteString.copyFrom(receiver.ack(transfer)))
            .build());
    response.onCompleted();
  }

  // ---- one FlightData message ----

  private void read(InputStream in) throws IOException {
    // Asked once per message: a composite of transport buffers answers by checking every one.
    zeroCopy = in instanceof HasByteBuffer h && h.byteBufferSupported();
    Flight.FlightDescriptor descriptor = null;
    byte[] header = null;
    boolean body = false;
    for (int tag = readTag(in); tag != -1; tag = readTag(in)) {
      int field = tag >>> 3;
      int wire = tag & 7;
      if (wire != 2) {
        skipField(in, wire);
        continue;
      }
      long len = readVarint(in);
      if (field == DESCRIPTOR) {
        descriptor = Flight.FlightDescriptor.parseFrom(readBytes(in, len));
      } else if (field == DATA_HEADER) {
        header = readBytes(in, len);
      } else if (field == DATA_BODY) {
        message(descriptor, header, in, len);
        body = true;
      } else {
        skip(in, len);
      }
    }
    if (!body) {
      message(descriptor, header, in, 0);
    }
  }

  private void message(
      Flight.FlightDescriptor descriptor, byte[] header, InputStream in, long bodyLen)
      throws IOException {
    if (!started) {
      started = true;
      transfer =
          receiver.lookup(
              descriptor != null
                      && descriptor.getType() == Flight.FlightDescriptor.DescriptorType.CMD
                  ? descriptor.getCmd().toStringUtf8()
                  : null);
    }
    if (header == null) {
      skip(in, bodyLen); // app metadata only
      return;
    }
    IpcHeader h = IpcHeader.decode(header, FIELDS);
    if (h.type() == MessageHeader.Schema) {
      if (transfer != null) {
        receiver.checkSchema(transfer, h.schema());
      }
      schemaSeen = true;
      skip(in, bodyLen);
    } else if (h.type() == MessageHeader.RecordBatch && schemaSeen) {
      if (transfer == null) {
        skip(in, bodyLen); // a late retry of a completed transfer: write nothing
      } else {
        batch(h.batch(), in, bodyLen);
      }
    } else {
      throw new KvTransferException(
          FlightStatusCode.INVALID_ARGUMENT,
          "KV transfer: expected a schema, then record batches; got IPC message type "
              + h.typeName());
    }
  }

  private void batch(IpcHeader.BatchHeader rb, InputStream in, long bodyLen) throws IOException {
    IncomingTransfer t = transfer;
    if (rb.compressed()) {
      throw receiver.fail(t, "compressed KV batches are not supported");
    }
    if (rb.nodeCount() != FIELDS
        || rb.bufferCount() != 2 * FIELDS
        || rb.rows() > Integer.MAX_VALUE) {
      throw receiver.fail(
          t,
          "a KV batch must have "
              + FIELDS
              + " columns of 2 buffers, got "
              + rb.nodeCount()
              + " and "
              + rb.bufferCount());
    }
    int rows = (int) rb.rows();
    for (int i = 0; i < FIELDS; i++) {
      if (rb.nodes()[i][0] != rows || rb.nodes()[i][1] != 0) {
        throw receiver.fail(t, "KV rows must not hold nulls");
      }
    }
    int[][] ints = new int[3][];
    long pos = 0;
    for (int i = 0; i < 2 * FIELDS; i++) {
      long off = rb.buffers()[i][0];
      long len = rb.buffers()[i][1];
      if (off < pos || off + len > bodyLen) {
        throw receiver.fail(
            t,
            "buffer "
                + i
                + " of a KV batch lies at "
                + off
                + "+"
                + len
                + " in a body of "
                + bodyLen);
      }
      skip(in, off - pos);
      if (i % 2 == 1 && i < 2 * FIELDS - 1) {
        if (len < rows * 4L) {
          throw receiver.fail(
              t, "column " + i / 2 + " holds " + len + " bytes for " + rows + " rows");
        }
        ints[i / 2] = readInts(in, rows);
        skip(in, len - rows * 4L);
      } else if (i == 2 * FIELDS - 1) {
        if (len < (long) rows * rowBytes) {
          throw receiver.fail(
              t,
              "a KV batch of "
                  + rows
                  + " rows carries "
                  + len
                  + " bytes, expected "
                  + (long) rows * rowBytes);
        }
        for (int r = 0; r < rows; r++) {
          int layer = ints[0][r];
          int block = ints[1][r];
          receiver.checkRow(t, layer, block, ints[2][r]);
          IncomingTransfer.Outcome o;
          try {
            o = t.write(layer, block, ints[2][r], (poolBlock, l) -> copyRow(in, poolBlock, l));
          } catch (UncheckedIOException e) {
            throw e.getCause(); // the row is cut off: the sender's error, as anywhere else
          }
          if (o != IncomingTransfer.Outcome.WRITTEN) {
            receiver.checkOutcome(t, o);
            skip(in, rowBytes);
          }
        }
        skip(in, len - (long) rows * rowBytes);
      } else {
        skip(in, len); // validity: no nulls, checked above
      }
      pos = off + len;
    }
    skip(in, bodyLen - pos);
  }

  /** Copies the next row of the body into the pool, one copy per transport buffer it spans. */
  private void copyRow(InputStream in, int poolBlock, int layer) {
    try {
      int off = 0;
      while (off < rowBytes) {
        int k;
        if (zeroCopy) {
          ByteBuffer bb = ((HasByteBuffer) in).getByteBuffer();
          if (bb == null) {
            throw new EOFException("a row is cut off after " + off + " of " + rowBytes + " bytes");
          }
          k = Math.min(rowBytes - off, bb.remaining());
          bb.limit(bb.position() + k);
          pool.writeLayerBytes(poolBlock, layer, off, bb);
          skip(in, k);
        } else {
          k = in.read(scratch, 0, Math.min(scratch.length, rowBytes - off));
          if (k < 0) {
            throw new EOFException("a row is cut off after " + off + " of " + rowBytes + " bytes");
          }
          pool.writeLayerBytes(poolBlock, layer, off, ByteBuffer.wrap(scratch, 0, k));
        }
        off += k;
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  // ---- protobuf wire helpers (FlightData is read by hand so its body is never copied whole) ----

  private static int readTag(InputStream in) throws IOException {
    int b = in.read();
    if (b < 0) {
      return -1;
    }
    long v = b & 0x7f;
    for (int shift = 7; (b & 0x80) != 0; shift += 7) {
      b = in.read();
      if (b < 0 || shift > 28) {
        throw new EOFException("a field tag is cut off");
      }
      v |= (long) (b & 0x7f) << shift;
    }
    return (int) v;
  }

  private static long readVarint(InputStream in) throws IOException {
    long v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      int b = in.read();
      if (b < 0) {
        throw new EOFException("a length is cut off");
      }
      v |= (long) (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return v;
      }
    }
    throw new IOException("malformed varint");
  }

  private static void skipField(InputStream in, int wire) throws IOException {
    switch (wire) {
      case 0 -> readVarint(in);
      case 1 -> skip(in, 8);
      case 5 -> skip(in, 4);
      default -> throw new IOException("unsupported protobuf wire type " + wire + " in FlightData");
    }
  }

  private static byte[] readBytes(InputStream in, long len) throws IOException {
    if (len < 0 || len > Integer.MAX_VALUE) {
      throw new IOException("a FlightData field of " + len + " bytes");
    }
    // The length is the sender's claim: allocate only as much as the message really holds.
    byte[] b = in.readNBytes((int) len);
    if (b.length < len) {
      throw new EOFException("a field is cut off after " + b.length + " of " + len + " bytes");
    }
    return b;
  }

  private static int[] readInts(InputStream in, int n) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(readBytes(in, n * 4L)).order(ByteOrder.LITTLE_ENDIAN);
    int[] out = new int[n];
    for (int i = 0; i < n; i++) {
      out[i] = b.getInt();
    }
    return out;
  }

  private static void skip(InputStream in, long n) throws IOException {
    while (n > 0) {
      long k = in.skip(n);
      if (k <= 0) {
        if (in.read() < 0) {
          throw new EOFException(n + " bytes short");
        }
        k = 1;
      }
      n -= k;
    }
  }
}
