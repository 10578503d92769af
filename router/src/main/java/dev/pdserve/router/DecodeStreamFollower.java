package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.NodeClients.Call;
import dev.pdserve.router.NodeClients.DecodeCall;
import dev.pdserve.router.NodeClients.DecodeListener;
import dev.pdserve.router.NodeClients.FirstToken;
import dev.pdserve.router.NodeClients.Migrated;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.NodeClients.ResumeCall;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Opens a request's decode stream and follows it to its end: deltas to the sink, the completion or
 * error to {@link RequestOutcomes}; when a draining decode node moves the sequence, it continues on
 * the node the sequence moved to. Every token has an index in the request's output; a resumed
 * stream that overlaps the one before has its repeated tokens dropped, so the client sees each
 * token once. Owns the transitions into DECODING and DECODING → MIGRATING.
 */
final class DecodeStreamFollower {
  private static final Logger LOG = LogManager.getLogger(DecodeStreamFollower.class);

  private final ClusterView nodes;
  private final NodeClients clients;
  private final RouterMetrics metrics;
  private final Ticker ticker;
  private final NodeSelector selector;
  private final RequestOutcomes outcomes;
  private final AtomicLong migrationsFollowed = new AtomicLong();

  DecodeStreamFollower(RouterSettings settings, NodeSelector selector, RequestOutcomes outcomes) {
    this.nodes = settings.nodes();
    this.clients = settings.clients();
    this.metrics = settings.metrics();
    this.ticker = settings.ticker();
    this.selector = selector;
    this.outcomes = outcomes;
  }

  /** Decode streams continued on another decode node after a migration. */
  long migrationsFollowed() {
    return migrationsFollowed.get();
  }

  /**
   * PREFILLING → DECODING: opens the stream on the node holding {@code f}'s reservation, after the
   * prefill node's {@code first} token; {@code first} null: the decode node prefills itself.
   */
  void open(InFlightRequest f, FirstToken first) {
    if (!f.startDecoding()) {
      return; // ended meanwhile: ending it released the reservation
    }
    NodeInfo d = f.decodeNode();
    selector.decodeStarted(d.id());
    DecodeCall call =
        new DecodeCall(
            f.requestId(),
            f.reservation(),
            f.prompt(),
            first,
            f.request().sampling(),
            f.prepared().seed(),
            f.deadlineNanos());
    opened(f, clients.decode(d, call, new Followed(f).stream(d, 0)));
  }

  private static void opened(InFlightRequest f, Call call) {
    if (!f.decodeCallOpened(call)) {
      call.cancel("request ended");
    }
  }

  /** One request's streams: the tokens delivered so far, over every stream it had. */
  private final class Followed {
    private final InFlightRequest f;

    /** Tokens received so far (their index is the de-duplication key); one stream at a time. */
    private volatile int delivered;

    Followed(InFlightRequest f) {
      this.f = f;
    }

    /** A listener for the stream on {@code node} whose first token has index {@code firstIndex}. */
    DecodeListener stream(NodeInfo node, int firstIndex) {
      return new DecodeListener() {
        private int next = firstIndex;

        @Override
        public void onDelta(int[] ids, String text, float[] logprobs) {
          int start = next;
          next += ids.length;
          int skip = Math.max(0, delivered - start);
          if (skip > 0 && ids.length > 0) {
            if (skip >= ids.length) {
              return;
            }
            ids = Arrays.copyOfRange(ids, skip, ids.length);
            logprobs =
                logprobs.length == 0
                    ? logprobs
                    : Arrays.copyOfRange(logprobs, skip, logprobs.length);
          }
          delivered = Math.max(delivered, next);
          if (!f.isFinished()) {
            if (ids.length > 0) {
              f.tokensArrived(ids.length, ticker.read(), metrics);
            }
            f.sink().onDelta(ids, text, logprobs);
          }
        }

        @Override
        public void onComplete(
            String finishReason,
            String stopReason,
            int promptTokens,
            int completionTokens,
            int cachedTokens) {
          try (CloseableThreadContext.Instance ctx = f.logContext()) {
            ended(node);
            if ("abort".equals(finishReason)) {
              // A client's abort finished the request before this came (then this does nothing);
              // otherwise nobody here asked to stop: the decode node cut the sequence (its
              // reservation was released). Partial output is not an answer; say so instead of
              // finishing quietly.
              outcomes.fail(
                  f,
                  "decode_aborted",
                  ServingException.unavailable(
                      "decode node "
                          + node.id()
                          + " ended request "
                          + f.requestId()
                          + " after "
                          + completionTokens
                          + " tokens without finishing it (its KV reservation was released);"
                          + " retry the request"));
              return;
            }
            outcomes.complete(f, finishReason, stopReason, completionTokens, cachedTokens);
          }
        }

        @Override
        public void onError(ServingException error) {
          try (CloseableThreadContext.Instance ctx = f.logContext()) {
            ended(node);
            outcomes.fail(f, RouterMetrics.reasonOf(error), error);
          }
        }

        @Override
        public void onMigrated(Migrated m) {
          try (CloseableThreadContext.Instance ctx = f.logContext()) {
            ended(node);
            migrated(node, m);
          }
        }
      };
    }

    private void ended(NodeInfo node) {
      selector.decodeEnded(node.id());
      f.decodeStreamEnded();
    }

    /** DECODING → MIGRATING → DECODING: continue the stream where the sequence moved. */
    private void migrated(NodeInfo from, Migrated m) {
      NodeInfo target =
          nodes
              .get(m.targetNodeId())
              .orElseGet(
                  () ->
                      new NodeInfo(
                          m.targetNodeId(),
                          NodeRole.DECODE,
                          NodeState.ACTIVE,
                          0,
                          "",
                          m.targetGrpcAddress(),
                          "",
                          "",
                          null,
                          0));
      // The target's reservation has a lease like the first one (one cluster, one lease
      // setting): renew it, or the target frees the moved sequence when the lease runs out.
      Reserved first = f.reservation();
      long lease = first != null ? first.leaseMillis() : 0;
      Reserved r = new Reserved(m.transferId(), "", 0, lease);
      if (!f.migrating(target, r, ticker.read())) {
        clients.release(target, r.transferId()); // the request ended meanwhile
        return;
      }
      int n = m.generatedIds().length;
      if (delivered < n) {
        outcomes.fail( // ending it in MIGRATING releases the target's reservation
            f,
            "migration_lost",
            ServingException.unavailable(
                "decode node "
                    + from.id()
                    + " moved request "
                    + f.requestId()
                    + " after "
                    + n
                    + " tokens but only "
                    + delivered
                    + " arrived; retry the request"));
        return;
      }
      LOG.info(
          "request {} continues on decode node {} after {} tokens (moved from {})",
          f.requestId(),
          target.id(),
          n,
          from.id());
      if (!f.startDecoding()) {
        return;
      }
      migrationsFollowed.incrementAndGet();
      selector.decodeStarted(target.id());
      ResumeCall call =
          new ResumeCall(
              f.requestId(),
              r,
              f.prompt(),
              m.generatedIds(),
              f.request().sampling(),
              f.prepared().seed(),
              f.deadlineNanos());
      opened(f, clients.resume(target, call, stream(target, n)));
    }
  }
}
