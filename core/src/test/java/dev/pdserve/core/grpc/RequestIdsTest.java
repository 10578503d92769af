package dev.pdserve.core.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.core.logging.LogContext;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.ThreadContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The request id travels in gRPC metadata: a real Netty server built by {@link GrpcServer} and a
 * channel from {@link Channels}; the handler reports the log context it ran in.
 */
class RequestIdsTest {
  private GrpcServer server;
  private Channels channels;

  /** Answers with the request id and node id of its own log context ("-" for none). */
  static final class ContextEcho extends NodeServiceGrpc.NodeServiceImplBase {
    @Override
    public void status(StatusRequest req, StreamObserver<NodeStatus> out) {
      out.onNext(
          NodeStatus.newBuilder()
              .setId(String.valueOf(ThreadContext.get(LogContext.REQUEST_ID)))
              .setRole(String.valueOf(ThreadContext.get(LogContext.NODE_ID)))
              .build());
      out.onCompleted();
    }
  }

  @BeforeEach
  void start() throws IOException {
    server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("echo")
            .nodeId("node-7")
            .addService(new ContextEcho())
            .build();
    server.start();
    channels = new Channels(Channels.Settings.defaults());
  }

  @AfterEach
  void stop() {
    channels.close();
    server.close();
  }

  private NodeStatus call() {
    return NodeServiceGrpc.newBlockingStub(channels.get("127.0.0.1:" + server.port()))
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .status(StatusRequest.getDefaultInstance());
  }

  @Test
  void theCallersRequestIdIsInTheHandlersLogContext() {
    for (String id : new String[] {"req-1", "chat cmpl/42 ü 你好 %20"}) {
      try (CloseableThreadContext.Instance ctx =
          CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
        NodeStatus seen = call();
        assertEquals(id, seen.getId(), "request id in the handler's context");
        assertEquals("node-7", seen.getRole(), "the server's node id in the handler's context");
      }
    }
  }

  @Test
  void aCallOutsideARequestCarriesNoId() {
    assertEquals("null", call().getId());
  }

  @Test
  void headerValuesRoundTrip() {
    for (String id : new String[] {"a", "x y+z", "%41", "ü"}) {
      String wire = RequestIds.encode(id);
      assertEquals(
          true,
          wire.chars().allMatch(c -> c > 0x20 && c < 0x7f),
          "printable ASCII on the wire: " + wire);
      assertEquals(id, RequestIds.decode(wire));
    }
    assertEquals(
        "100%", RequestIds.decode("100%"), "a value that is not URL encoding is taken as it is");
  }
}
