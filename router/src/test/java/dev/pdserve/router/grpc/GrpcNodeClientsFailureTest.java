package dev.pdserve.router.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.internal.v1.DecodeRequest;
import dev.pdserve.internal.v1.DecodeServiceGrpc;
import dev.pdserve.internal.v1.TokenEvent;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.router.NodeClients.DecodeCall;
import dev.pdserve.router.NodeClients.DecodeListener;
import dev.pdserve.router.NodeClients.FirstToken;
import dev.pdserve.router.NodeClients.Migrated;
import dev.pdserve.router.NodeClients.Reserved;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * How a decode stream's end reads at the router, over a real Netty gRPC server on port 0: a node
 * shutting down mid-stream (it resets the call, which gRPC reports as CANCELLED) or going away
 * reads as UNAVAILABLE — the node is gone — while the node's own answers keep their class.
 */
class GrpcNodeClientsFailureTest {
  private final CountDownLatch streamOpen = new CountDownLatch(1);
  private volatile StreamObserver<TokenEvent> serverSide;
  private GrpcServer server;
  private Channels channels;
  private NodeInfo node;

  @BeforeEach
  void start() throws Exception {
    server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("fake-decode")
            .addService(
                new DecodeServiceGrpc.DecodeServiceImplBase() {
                  @Override
                  public void decode(DecodeRequest req, StreamObserver<TokenEvent> out) {
                    serverSide = out; // answered by the test, or never
                    streamOpen.countDown();
                  }
                })
            .build()
            .start();
    channels = new Channels(Channels.Settings.defaults());
    node =
        new NodeInfo(
            "d0",
            NodeRole.DECODE,
            NodeState.ACTIVE,
            1,
            "",
            "127.0.0.1:" + server.port(),
            "",
            "",
            Load.IDLE,
            0);
  }

  @AfterEach
  void stop() {
    server.close(Duration.ZERO);
    channels.close();
  }

  @Test
  void aServerShuttingDownMidStreamReadsAsTheNodeGone() throws Exception {
    CompletableFuture<ServingException> error = openStream();
    server.close(Duration.ZERO); // running calls are cut, not finished
    ServingException e = error.get(30, TimeUnit.SECONDS);
    assertEquals(ServingException.Kind.UNAVAILABLE, e.kind(), e.toString());
    assertTrue(e.getMessage().startsWith("decode on decode node d0: "), e.getMessage());
  }

  @Test
  void theNodesOwnCancelKeepsItsClass() throws Exception {
    CompletableFuture<ServingException> error = openStream();
    serverSide.onError(
        GrpcErrors.toException(ServingException.cancelled("request r was cancelled")));
    ServingException e = error.get(30, TimeUnit.SECONDS);
    assertEquals(ServingException.Kind.CANCELLED, e.kind(), e.toString());
    assertEquals("decode on decode node d0: request r was cancelled", e.getMessage());
  }

  @Test
  void theNodesOwnRefusalKeepsItsClass() throws Exception {
    CompletableFuture<ServingException> error = openStream();
    serverSide.onError(GrpcErrors.toException(ServingException.invalid("bad parameters")));
    assertEquals(ServingException.Kind.INVALID_ARGUMENT, error.get(30, TimeUnit.SECONDS).kind());
  }

  /** Opens a decode stream to the fake node; the future holds the error it ends with. */
  private CompletableFuture<ServingException> openStream() throws InterruptedException {
    CompletableFuture<ServingException> error = new CompletableFuture<>();
    GrpcNodeClients clients = new GrpcNodeClients(channels, Ticker.systemTicker());
    clients.decode(
        node,
        new DecodeCall(
            "r",
            new Reserved("t", "127.0.0.1", 1, 0),
            new int[] {1, 2, 3},
            new FirstToken(4, 0, 0, 0, 0),
            SamplingParams.builder().temperature(0).maxTokens(4).build(),
            1,
            0),
        new DecodeListener() {
          @Override
          public void onDelta(int[] tokenIds, String text, float[] logprobs) {}

          @Override
          public void onComplete(
              String finishReason,
              String stopReason,
              int promptTokens,
              int completionTokens,
              int cachedTokens) {
            error.completeExceptionally(new AssertionError("completed: " + finishReason));
          }

          @Override
          public void onError(ServingException e) {
            error.complete(e);
          }

          @Override
          public void onMigrated(Migrated migrated) {
            error.completeExceptionally(new AssertionError("migrated"));
          }
        });
    assertTrue(streamOpen.await(30, TimeUnit.SECONDS), "the stream reached the server");
    return error;
  }
}
