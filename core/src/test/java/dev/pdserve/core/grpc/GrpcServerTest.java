package dev.pdserve.core.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
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

  /** Request: 8-byte sleep millis (or anything else); response: the handler thread's name. */
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

  private final CountDownLatch handlerStarted = new CountDownLatch(1);
  private final List<AutoCloseable> toClose = new ArrayList<>();

  private ServerServiceDefinition probe() {
    return ServerServiceDefinition.builder("pdserve.test.Probe")
        .addMethod(
            WHO,
            ServerCalls.asyncUnaryCall(
                (byte[] req, StreamObserver<byte[]> out) -> {
                  handlerStarted.countDown();
                  if (req.length == 8) {
                    long until =
                        System.nanoTime()
                            + TimeUnit.MILLISECONDS.toNanos(ByteBuffer.wrap(req).getLong());
                    while (System.nanoTime() < until && !Context.current().isCancelled()) {
                      sleep(5);
                    }
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

  private static byte[] millis(long ms) {
    return ByteBuffer.allocate(8).putLong(ms).array();
  }

  private <T extends AutoCloseable> T closeLater(T c) {
    toClose.add(0, c);
    return c;
  }

  @AfterEach
  void closeAll() throws Exception {
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

  @Test
  void closeLetsRunningCallsFinishThenStopsListening() throws Exception {
    GrpcServer server = GrpcServer.forAddress("127.0.0.1", 0).addService(probe()).build().start();
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    ManagedChannel ch = channels.get("127.0.0.1:" + server.port());
    var call = ClientCalls.futureUnaryCall(ch.newCall(WHO, CallOptions.DEFAULT), millis(400));
    assertTrue(handlerStarted.await(5, TimeUnit.SECONDS));

    long t0 = System.nanoTime();
    server.close();
    long tookMs = (System.nanoTime() - t0) / 1_000_000;

    assertTrue(
        tookMs >= 200,
        "close() returned after " + tookMs + " ms, before the running call could finish");
    assertTrue(
        new String(call.get(5, TimeUnit.SECONDS), StandardCharsets.UTF_8).startsWith("grpc-"),
        "the running call completed normally");
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
  void closeCancelsCallsThatOutliveTheGracePeriod() throws Exception {
    GrpcServer server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .shutdownGrace(Duration.ofMillis(300))
            .addService(probe())
            .build()
            .start();
    Channels channels = closeLater(new Channels(Channels.Settings.defaults()));
    var call =
        ClientCalls.futureUnaryCall(
            channels.get("127.0.0.1:" + server.port()).newCall(WHO, CallOptions.DEFAULT),
            millis(60_000));
    assertTrue(handlerStarted.await(5, TimeUnit.SECONDS));
    long t0 = System.nanoTime();
    server.close();
    long tookMs = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(tookMs < 5_000, "close() took " + tookMs + " ms");
    var e = assertThrows(ExecutionException.class, () -> call.get(5, TimeUnit.SECONDS));
    Status.Code code = Status.fromThrowable(e.getCause()).getCode();
    assertTrue(
        code == Status.Code.UNAVAILABLE || code == Status.Code.CANCELLED,
        "call ended with " + code);
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
