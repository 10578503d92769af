package dev.pdserve.core.kv.flight;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.model.config.ModelPresets;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerServiceDefinition;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.Location;
import org.apache.arrow.flight.impl.FlightServiceGrpc;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A KV push gives up when its deadline passes by the client's ticker, whatever real time says: the
 * decode node here is a real gRPC server answering DoPut but never acknowledging, or never reading.
 * The deadline is a minute; the fake ticker is moved past it while the push waits.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class OutgoingTransferDeadlineTest {
  private static final Duration TIMEOUT = Duration.ofMinutes(1);
  private static final KvLayout LAYOUT = KvLayout.of(ModelPresets.get("tiny"));

  /** DoPut with its messages read as bytes and dropped. */
  private static final MethodDescriptor<InputStream, byte[]> DO_PUT =
      MethodDescriptor.<InputStream, byte[]>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName(FlightServiceGrpc.getDoPutMethod().getFullMethodName())
          .setRequestMarshaller(
              new MethodDescriptor.Marshaller<>() {
                @Override
                public InputStream stream(InputStream value) {
                  return value;
                }

                @Override
                public InputStream parse(InputStream stream) {
                  try {
                    stream.transferTo(OutputStream.nullOutputStream());
                  } catch (IOException e) {
                    throw new UncheckedIOException(e);
                  }
                  return InputStream.nullInputStream();
                }
              })
          .setResponseMarshaller(
              new MethodDescriptor.Marshaller<>() {
                @Override
                public InputStream stream(byte[] value) {
                  return new ByteArrayInputStream(value);
                }

                @Override
                public byte[] parse(InputStream stream) {
                  throw new UnsupportedOperationException("the server only sends");
                }
              })
          .build();

  private final FakeTicker ticker = new FakeTicker();
  private final RootAllocator root = new RootAllocator();
  private final CountDownLatch putStarted = new CountDownLatch(1);
  private final CountDownLatch halfClosed = new CountDownLatch(1);
  private GrpcServer decodeNode;
  private KvTransferClient client;

  @AfterEach
  void tearDown() {
    if (client != null) {
      client.close();
    }
    if (decodeNode != null) {
      decodeNode.close();
    }
    assertEquals(0, root.getAllocatedMemory(), "Arrow memory still allocated after the test");
    root.close();
  }

  /** A decode node whose DoPut reads everything (or nothing) and never answers. */
  private Location startDecodeNode(boolean reads) throws IOException {
    ServerCallHandler<InputStream, byte[]> handler =
        (ServerCall<InputStream, byte[]> call, Metadata headers) -> {
          putStarted.countDown();
          if (reads) {
            call.request(Integer.MAX_VALUE);
          }
          return new ServerCall.Listener<>() {
            @Override
            public void onHalfClose() {
              halfClosed.countDown(); // and never a response
            }
          };
        };
    decodeNode =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("silent-decode")
            .addService(
                ServerServiceDefinition.builder(FlightServiceGrpc.SERVICE_NAME)
                    .addMethod(DO_PUT, handler)
                    .build())
            .build()
            .start();
    return Location.forGrpcInsecure("127.0.0.1", decodeNode.port());
  }

  private OutgoingTransfer open(SendPath path, Location at, String id) {
    client =
        new KvTransferClient(
            root,
            LAYOUT,
            KvTransferClient.Options.DEFAULTS
                .withSendPath(path)
                .withTimeout(TIMEOUT)
                .withTicker(ticker));
    return client.open(at, id);
  }

  private static float[] kv(int tokens) {
    return new float[LAYOUT.kvHeads() * tokens * LAYOUT.headDim()];
  }

  private static KvTransferException cause(ExecutionException e) {
    return assertInstanceOf(KvTransferException.class, e.getCause(), "the push failed with");
  }

  @ParameterizedTest
  @EnumSource(SendPath.class)
  void completeGivesUpOnceTheTickerPassesTheDeadlineWithoutAnAcknowledgement(SendPath path)
      throws Exception {
    Location at = startDecodeNode(true);
    try (OutgoingTransfer out = open(path, at, "never-acked")) {
      float[] k = kv(37);
      for (int layer = 0; layer < LAYOUT.layers(); layer++) {
        out.sendLayer(layer, k, k, 37);
      }
      CompletableFuture<Void> completing = CompletableFuture.runAsync(out::complete);
      assertTrue(halfClosed.await(20, TimeUnit.SECONDS), "the push never ended its stream");
      assertFalse(completing.isDone(), "complete() returned without an acknowledgement");

      ticker.advance(TIMEOUT.plusMillis(1));
      KvTransferException e =
          cause(assertThrows(ExecutionException.class, () -> completing.get(20, TimeUnit.SECONDS)));
      assertEquals(FlightStatusCode.TIMED_OUT, e.code(), e.toString());
      assertEquals("no acknowledgement from the decode node before the deadline", e.description());
    }
  }

  @ParameterizedTest
  @EnumSource(SendPath.class)
  void aSenderWaitingForRoomGivesUpOnceTheTickerPassesTheDeadline(SendPath path) throws Exception {
    Location at = startDecodeNode(false);
    // 16 MiB of KV against a receive window of about 1 MiB that is never given back.
    int tokens = 4096;
    float[] k = kv(tokens);
    try (OutgoingTransfer out = open(path, at, "never-read")) {
      CompletableFuture<Void> sending =
          CompletableFuture.runAsync(
              () -> {
                for (int layer = 0; layer < LAYOUT.layers(); layer++) {
                  out.sendLayer(layer, k, k, tokens);
                }
              });
      assertTrue(putStarted.await(20, TimeUnit.SECONDS), "the push never reached the server");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
      while (out.bytesSent() == 0 && !sending.isDone()) {
        assertTrue(System.nanoTime() < deadline, "nothing was sent within 20 s");
        Thread.sleep(10);
      }
      assertFalse(sending.isDone(), "16 MiB went through a window that never opened");

      ticker.advance(TIMEOUT.plusMillis(1));
      KvTransferException e =
          cause(assertThrows(ExecutionException.class, () -> sending.get(20, TimeUnit.SECONDS)));
      assertEquals(FlightStatusCode.TIMED_OUT, e.code(), e.toString());
      assertEquals(
          "KV transfer 'never-read' timed out waiting for the decode node to take data",
          e.description());
    }
  }
}
