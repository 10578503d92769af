package dev.pdserve.core.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Real Netty servers on 127.0.0.1:0 (and one in-process server), real channels. */
class GrpcServerTest {
  private static final MethodDescriptor.Marshaller<byte[]> BYTES =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
          return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
          try {
            return stream.readAllBytes();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };

  /**
   * Request: {@link #HOLD} (wait for the test's release or the call's cancellation first) or
   * anything else; response: the handler thread's name.
   */
  private static final MethodDescriptor<byte[], byte[]> WHO =
      MethodDescriptor.<byte[], byte[]>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName("pdserve.test.Probe/Who")
          .setRequestMarshaller(BYTES)
          .setResponseMarshaller(BYTES)
          .build();

  /** Streams 200 messages of 64 KiB, writing only when the stream is ready. */
  private static final MethodDescriptor<byte[], byte[]> FLOOD =
      MethodDescriptor.<byte[], byte[]>newBuilder()
          .setType(MethodDescriptor.MethodType.SERVER_STREAMING)
          .setFullMethodName("pdserve.test.Probe/Flood")
          .setRequestMarshaller(BYTES)
          .setResponseMarshaller(BYTES)
          .build();

  /** A request the handler holds until {@link #releaseHeldCalls} or its call is cancelled. */
  private static final byte[] HOLD = {'h', 'o', 'l', 'd'};

  private final CountDownLatch handlerStarted = new CountDownLatch(1);
  private final CountDownLatch releaseHeldCalls = new CountDownLatch(1);

  /** Counted when a held call is cancelled while its handler waits. */
  private final CountDownLatch handlerSawCancel = new CountDownLatch(1);

  private final List<AutoCloseable> toClose = new ArrayList<>();

  /** Holds the handler until the test releases it or its call is cancelled (then counted). */
  private void awaitReleaseOrCancel(Context call) {
    try {
      while (!releaseHeldCalls.await(10, TimeUnit.MILLISECONDS)) {
        if (call.isCancelled()) {
          handlerSawCancel.countDown();
          return;
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private ServerServiceDefinition probe() {
    return ServerServiceDefinition.builder("pdserve.test.Probe")
        .addMethod(
            WHO,
            ServerCalls.asyncUnaryCall(
                (byte[] req, StreamObserver<byte[]> out) -> {
                  if (Arrays.equals(req, HOLD)) {
                    handlerStarted.countDown();
                    awaitReleaseOrCancel(Context.current());
                  } else {
                    handlerStarted.countDown();
                  }
                  out.onNext(Thread.currentThread().getName().getBytes(StandardCharsets.UTF_8));
                  out.onCompleted();
                }))
        .addMethod(
            FLOOD,
            ServerCalls.asyncServerStreamingCall(
                (byte[] req, StreamObserver<byte[]> out) -> {
                  ServerCallStreamObserver<byte[]> stream = (ServerCallStreamObserver<byte[]>) out;
                  for (int i = 0; i < 200; i++) {
                    while (!stream.isReady()) { // the wait DESIGN §8 warns about
                      if (stream.isCancelled()) {
                        return;
                      }
                      sleep(1);
                    }
                    byte[] chunk = new byte[64 << 10];
                    chunk[0] = (byte) i;
                    stream.onNext(chunk);
                  }
                  stream.onCompleted();
                }))
        .build();
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private <T extends AutoCloseable> T closeLater(T c) {
    toClose.add(0, c);
    return c;
  }

  @AfterEach
  void closeAll() throws Exception {
    releaseHeldCalls.countDown();
    for (AutoCloseable c : toClose) {
      c.close();
    }
  }

  private static NodeConfig prefillNode() {
    return NodeConfigLoader.fromMap(
        Map.of("role", "prefill", "node.id", "p1", "grpc.max-inbound-bytes", "1MiB"));
  }

  @Test
  void healthReportsServingUnderTheRoleName() throws Exception {
    GrpcServer server = closeLater(GrpcServer.forNode(prefillNode()).build().start());
    assertTrue(server.port() > 0, "bound to a real port");
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    var health =
        HealthGrpc.newBlockingStub(channels.get("127.0.0.1:" + server.port()))
            .withDeadlineAfter(5, TimeUnit.SECONDS);

    assertEquals(
        ServingStatus.SERVING,
        health
            .check(HealthCheckRequest.newBuilder().setService("pdserve.prefill").build())
            .getStatus());
    assertEquals(
        ServingStatus.SERVING,
        health.check(HealthCheckRequest.getDefaultInstance()).getStatus(),
        "overall status");
    StatusRuntimeException unknown =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                health.check(HealthCheckRequest.newBuilder().setService("pdserve.decode").build()));
    assertEquals(
        Status.Code.NOT_FOUND,
        unknown.getStatus().getCode(),
        "a prefill node does not claim the decode role");

    server.setServing("pdserve.prefill", false);
    assertEquals(
        ServingStatus.NOT_SERVING,
        health
            .check(HealthCheckRequest.newBuilder().setService("pdserve.prefill").build())
            .getStatus());
  }

  @Test
  void reflectionListsTheServices() throws Exception {
    GrpcServer server =
        closeLater(GrpcServer.forAddress("127.0.0.1", 0).addService(probe()).build().start());
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    CompletableFuture<List<String>> names = new CompletableFuture<>();
    StreamObserver<ServerReflectionRequest> requests =
        ServerReflectionGrpc.newStub(channels.get("127.0.0.1:" + server.port()))
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ServerReflectionResponse r) {
                    names.complete(
                        r.getListServicesResponse().getServiceList().stream()
                            .map(ServiceResponse::getName)
                            .toList());
                  }

                  @Override
                  public void onError(Throwable t) {
                    names.completeExceptionally(t);
                  }

                  @Override
                  public void onCompleted() {}
                });
    requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    List<String> listed = names.get(5, TimeUnit.SECONDS);
    requests.onCompleted();
    assertTrue(listed.contains("grpc.health.v1.Health"), listed.toString());
    assertTrue(listed.contains("grpc.reflection.v1.ServerReflection"), listed.toString());
  }

  @Test
  void handlersRunOnTheNamedBoundedPool() throws Exception {
    GrpcServer server =
        closeLater(
            GrpcServer.forAddress("127.0.0.1", 0)
                .name("probe")
                .threads(2)
                .addService(probe())
                .build()
                .start());
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    for (int i = 0; i < 5; i++) {
      String thread =
          new String(
              ClientCalls.blockingUnaryCall(ch, WHO, CallOptions.DEFAULT, new byte[0]),
              StandardCharsets.UTF_8);
      assertTrue(thread.matches("grpc-probe-[01]"), "handler ran on " + thread);
    }
  }

  @Test
  void aHandlerWaitingOnIsReadyCompletesInProcess() throws Exception {
    String name = InProcessServerBuilder.generateName();
    closeLater(
        GrpcServer.on(InProcessServerBuilder.forName(name))
            .name("inproc")
            .addService(probe())
            .build()
            .start());
    ManagedChannel ch = InProcessChannelBuilder.forName(name).build();
    closeLater(ch::shutdownNow);
    Iterator<byte[]> it =
        ClientCalls.blockingServerStreamingCall(
            ch, FLOOD, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), new byte[0]);
    int n = 0;
    while (it.hasNext()) {
      assertEquals((byte) n, it.next()[0]);
      n++;
    }
    assertEquals(200, n);
  }

  @Test
  void inboundMessagesOverTheLimitAreRefused() throws Exception {
    GrpcServer server =
        closeLater(GrpcServer.forNode(prefillNode()).addService(probe()).build().start());
    // The refused upload's HTTP/2 stream stays half-sent; don't wait the default 5 s for it at
    // close.
    Channels channels =
        closeLater(
            new Channels(Channels.Settings.defaults().withShutdownGrace(Duration.ofMillis(200))));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    assertTrue(
        ClientCalls.blockingUnaryCall(ch, WHO, CallOptions.DEFAULT, new byte[1000]).length > 0,
        "a small message passes");
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                ClientCalls.blockingUnaryCall(
                    ch,
                    WHO,
                    CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS),
                    new byte[2 << 20]));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.toString());
  }

  /** Whether the server still reports SERVING on {@code ch} (false once close() has begun). */
  private static boolean serving(ManagedChannel ch) {
    try {
      return HealthGrpc.newBlockingStub(ch)
              .withDeadlineAfter(2, TimeUnit.SECONDS)
              .check(HealthCheckRequest.getDefaultInstance())
              .getStatus()
          == ServingStatus.SERVING;
    } catch (StatusRuntimeException e) {
      return false; // shut down: new calls are refused
    }
  }

  private static void awaitNotServing(ManagedChannel ch) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (serving(ch)) {
      assertTrue(System.nanoTime() < deadline, "close() did not begin within 10 s");
      Thread.sleep(10);
    }
  }

  @Test
  void closeWaitsForTheRunningCallToFinishThenStopsListening() throws Exception {
    // The fake ticker never moves: the grace period cannot run out, only the call can end.
    GrpcServer server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .ticker(new FakeTicker())
            .addService(probe())
            .build()
            .start();
    closeLater(server);
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    var call = ClientCalls.futureUnaryCall(ch.newCall(WHO, CallOptions.DEFAULT), HOLD);
    assertTrue(handlerStarted.await(5, TimeUnit.SECONDS), "the call reached its handler");

    CompletableFuture<Void> closing = CompletableFuture.runAsync(server::close);
    awaitNotServing(ch);
    assertFalse(call.isDone(), "close() ended the running call instead of waiting for it");
    assertFalse(closing.isDone(), "close() returned while a call was still running");

    releaseHeldCalls.countDown();
    assertTrue(
        new String(call.get(10, TimeUnit.SECONDS), StandardCharsets.UTF_8).startsWith("grpc-"),
        "the running call completed normally");
    closing.get(10, TimeUnit.SECONDS);
    assertEquals(1, handlerSawCancel.getCount(), "the running call was cancelled while it ran");
    assertTrue(server.isTerminated());
    ManagedChannel fresh =
        new Channels(Channels.Settings.defaults()).get("127.0.0.1:" + server.port());
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                HealthGrpc.newBlockingStub(fresh)
                    .withDeadlineAfter(2, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.getDefaultInstance()));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    fresh.shutdownNow();
  }

  @Test
  void closeCancelsACallThatOutlivesTheGracePeriodOnceTheTickerPassesIt() throws Exception {
    FakeTicker ticker = new FakeTicker();
    GrpcServer server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .shutdownGrace(Duration.ofSeconds(30))
            .ticker(ticker)
            .addService(probe())
            .build()
            .start();
    closeLater(server);
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    var call = ClientCalls.futureUnaryCall(ch.newCall(WHO, CallOptions.DEFAULT), HOLD);
    assertTrue(handlerStarted.await(5, TimeUnit.SECONDS), "the call reached its handler");

    CompletableFuture<Void> closing = CompletableFuture.runAsync(server::close);
    awaitNotServing(ch);
    assertFalse(call.isDone(), "the call ended within the grace period");

    ticker.advance(Duration.ofSeconds(30));
    var e = assertThrows(ExecutionException.class, () -> call.get(10, TimeUnit.SECONDS));
    Status.Code code = Status.fromThrowable(e.getCause()).getCode();
    assertTrue(
        code == Status.Code.UNAVAILABLE || code == Status.Code.CANCELLED,
        "call ended with " + code);
    assertTrue(handlerSawCancel.await(10, TimeUnit.SECONDS), "the handler saw its call cancelled");
    closing.get(10, TimeUnit.SECONDS);
    assertTrue(server.isTerminated());
  }

  @Test
  void channelsCloseCancelsACallThatOutlivesTheGracePeriodOnceTheTickerPassesIt() throws Exception {
    GrpcServer server =
        closeLater(GrpcServer.forAddress("127.0.0.1", 0).addService(probe()).build().start());
    FakeTicker ticker = new FakeTicker();
    Channels channels =
        new Channels(
            Channels.Settings.defaults()
                .withShutdownGrace(Duration.ofSeconds(30))
                .withTicker(ticker));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    var call = ClientCalls.futureUnaryCall(ch.newCall(WHO, CallOptions.DEFAULT), HOLD);
    assertTrue(handlerStarted.await(5, TimeUnit.SECONDS), "the call reached its handler");

    CompletableFuture<Void> closing = CompletableFuture.runAsync(channels::close);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!ch.isShutdown()) {
      assertTrue(System.nanoTime() < deadline, "close() did not shut the channel down");
      Thread.sleep(10);
    }
    assertFalse(call.isDone(), "the call ended within the grace period");
    assertFalse(closing.isDone(), "close() returned while a call was still running");

    ticker.advance(Duration.ofSeconds(30));
    var e = assertThrows(ExecutionException.class, () -> call.get(10, TimeUnit.SECONDS));
    Status.Code code = Status.fromThrowable(e.getCause()).getCode();
    assertTrue(
        code == Status.Code.UNAVAILABLE || code == Status.Code.CANCELLED,
        "call ended with " + code);
    assertTrue(handlerSawCancel.await(10, TimeUnit.SECONDS), "the handler saw its call cancelled");
    closing.get(10, TimeUnit.SECONDS);
    assertTrue(ch.isTerminated());
  }

  @Test
  void channelsAreCachedPerAddressAndClosedTogether() throws Exception {
    Channels channels = new Channels(Channels.Settings.defaults());
    ManagedChannel first = channels.get("127.0.0.1:1");
    assertSame(first, channels.get("127.0.0.1:1"));
    ManagedChannel other = channels.get("localhost:1");
    assertNotSame(first, other);
    assertEquals(2, channels.size());
    channels.evict("127.0.0.1:1");
    assertTrue(first.isShutdown());
    assertNotSame(first, channels.get("127.0.0.1:1"));
    ManagedChannel last = channels.get("127.0.0.1:1");
    channels.close();
    assertTrue(last.isShutdown() && other.isShutdown());
    assertThrows(IllegalStateException.class, () -> channels.get("127.0.0.1:1"));
  }
}
