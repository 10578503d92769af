package dev.pdserve.core.logging;

import java.util.Map;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.ThreadContext;

/**
 * The Log4j2 context keys every pdserve log line of a request carries: {@value #REQUEST_ID} (the
 * request's id, the same on router, prefill, decode and expert shards) and {@value #NODE_ID} (the
 * node that wrote the line — in one JVM several nodes share threads' loggers, so the id travels in
 * the context, not in the logger name).
 *
 * <p>How the node id gets there: threads a node owns set it once ({@link
 * dev.pdserve.core.NamedThreadFactory} with a node id; gRPC server and client threads through
 * {@link dev.pdserve.core.grpc.GrpcServer} and {@link dev.pdserve.core.grpc.Channels}); the wiring
 * builds a node inside {@link #node(String)}, and components that start their own threads take the
 * node id found there ({@link #nodeId()}); request callbacks that may run on any thread open {@link
 * #request(String, String)}.
 */
public final class LogContext {
  /** The request id key. */
  public static final String REQUEST_ID = "request_id";

  /** The node id key. */
  public static final String NODE_ID = "node_id";

  private LogContext() {}

  /** The node id in this thread's context; null if none. */
  public static String nodeId() {
    return ThreadContext.get(NODE_ID);
  }

  /** Puts {@code nodeId} into this thread's context until closed (nothing if null). */
  public static CloseableThreadContext.Instance node(String nodeId) {
    return nodeId == null
        ? CloseableThreadContext.putAll(Map.of())
        : CloseableThreadContext.put(NODE_ID, nodeId);
  }

  /** Puts the request id and (when known) the node id into this thread's context until closed. */
  public static CloseableThreadContext.Instance request(String nodeId, String requestId) {
    CloseableThreadContext.Instance ctx =
        CloseableThreadContext.put(REQUEST_ID, requestId == null ? "" : requestId);
    return nodeId == null ? ctx : ctx.put(NODE_ID, nodeId);
  }
}
