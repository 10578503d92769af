package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.PagedSequenceKv;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.memory.ArrowBuf;

/**
 * A push stream written by {@link DirectPush} ({@link KvTransferClient.SendPath#DIRECT}): full
 * blocks of a paged cache go to gRPC as the pool's own memory, other rows from a staging buffer.
 * Backpressure follows gRPC's onReady signal.
 */
final class DirectPushLane extends PushLane {
  /** Longest wait for the stream to become ready before the deadline is checked again. */
  private static final long READY_WAIT_SLICE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  private final ClientCallStreamObserver<DirectPush.Frame> requests;
  private final Object ready = new Object();

  DirectPushLane(Context ctx, ManagedChannel channel) {
    super(ctx);
    long left = Math.max(1, ctx.nanosLeft());
    ClientCall<DirectPush.Frame, Flight.PutResult> call =
        channel.newCall(
            DirectPush.DO_PUT, CallOptions.DEFAULT.withDeadlineAfter(left, TimeUnit.NANOSECONDS));
    requests =
        (ClientCallStreamObserver<DirectPush.Frame>)
            ClientCalls.asyncBidiStreamingCall(call, new Responses());
    try {
      emit(DirectPush.schema(ctx.id(), ctx.layout()));
    } catch (RuntimeException e) {
      requests.cancel("KV transfer '" + ctx.id() + "' could not start", e);
      throw e;
    }
  }

  @Override
  void send(
      int layer, int first, int rows, int transferTokens, PagedSequenceKv paged, RowFiller filler) {
    int layerBytes = ctx.layout().layerBytes();
    int[] tokens = new int[rows];
    List<ArrowBuf> bodies = new ArrayList<>(rows);
    DirectPush.Frame frame;
    try {
      if (paged == null) {
        ArrowBuf staged = stage(first, rows, filler);
        staged.getReferenceManager().retain(); // the frame's reference; the spare keeps its own
        bodies.add(staged.slice(0, rows * (long) layerBytes));
      }
      for (int r = 0; r < rows; r++) {
        int block = first + r;
        tokens[r] = ctx.validTokens(block, transferTokens);
        if (paged == null) {
          continue;
        }
        if (tokens[r] == ctx.layout().blockSize()) {
          bodies.add(
              paged.pool().retainLayer(paged.block(block), layer)); // sent from the pool, uncopied
        } else {
          ArrowBuf staged =
              stage(block, 1, filler); // a partly filled block: copied, the rest zeroed
          staged.getReferenceManager().retain();
          bodies.add(staged.slice(0, layerBytes));
        }
      }
      frame = DirectPush.batch(ctx.layout(), layer, first, tokens, bodies);
    } catch (RuntimeException e) {
      bodies.forEach(ArrowBuf::close);
      throw e;
    }
    emit(frame);
  }

  private void emit(DirectPush.Frame frame) {
    try {
      awaitReady();
      requests.onNext(frame);
    } finally {
      frame.releaseUnsent();
    }
  }

  private void awaitReady() {
    synchronized (ready) {
      while (!requests.isReady()) {
        ack.throwIfFailed(ctx.id());
        ctx.checkWaiting();
        try {
          ready.wait(
              Math.max(
                  1,
                  TimeUnit.NANOSECONDS.toMillis(
                      Math.min(ctx.nanosLeft(), READY_WAIT_SLICE_NANOS))));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new KvTransferException(
              FlightStatusCode.CANCELLED,
              "KV transfer '" + ctx.id() + "': interrupted while waiting to send",
              e);
        }
      }
    }
    ack.throwIfFailed(ctx.id());
  }

  private void wake() {
    synchronized (ready) {
      ready.notifyAll();
    }
  }

  @Override
  void halfClose() {
    requests.onCompleted();
  }

  @Override
  void cancel(String why) {
    requests.cancel(why, null); // thread-safe in gRPC; a waiting sender is woken by onError
  }

  private final class Responses
      implements ClientResponseObserver<DirectPush.Frame, Flight.PutResult> {
    @Override
    public void beforeStart(ClientCallStreamObserver<DirectPush.Frame> stream) {
      stream.setOnReadyHandler(DirectPushLane.this::wake);
    }

    @Override
    public void onNext(Flight.PutResult value) {
      ack.onAck(value.getAppMetadata().asReadOnlyByteBuffer());
    }

    @Override
    public void onError(Throwable t) {
      ack.onError(t);
      wake();
    }

    @Override
    public void onCompleted() {
      ack.onCompleted();
      wake();
    }
  }
}
