package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.NodeClients.Call;
import dev.pdserve.router.NodeClients.DecodeCall;
import dev.pdserve.router.NodeClients.DecodeListener;
import dev.pdserve.router.NodeClients.FirstToken;
import dev.pdserve.router.NodeClients.Migrated;
import dev.pdserve.router.NodeClients.Reserved;
import dev.pdserve.router.NodeClients.ResumeCall;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Opens a request's decode stream and follows it to its end: deltas to the sink, the completion or
 * error to {@link RequestOutcomes}; when a draining decode node moves the sequence, it continues on
 * the node the sequence moved to. Every token has an index in the request's output ({@link
 * DeliveredTokens}); a stream that overlaps the one before has its repeated tokens dropped, so the
 * client sees each token once.
 *
 * <p>When the decode node is lost — its stream fails with UNAVAILABLE (the node died or shut down,
 * the connection broke), or the {@link StreamWatchdog} gives up a silent stream — the request
 * continues on another decode node from the tokens delivered (the {@code restart} callback
 * reserves, re-prefills the prompt and those tokens, and {@link #resume}s), at most {@link
 * FailureHandling#migrationLimit()} times; then it fails with one UNAVAILABLE saying what happened.
 * An UNAVAILABLE that says routed experts have no live shard ({@link ExpertsUnavailableException})
 * fails the request at once: every decode node needs the same experts. Other errors (the request's
 * deadline, a cancel, a refusal such as INVALID_ARGUMENT) and a decode-side {@code abort} nobody
 * asked for end the request as before: they are answers, not losses. A given-up stream is cancelled
 * and whatever it still sends is ignored.
 *
 * <p>Owns the transitions into DECODING, DECODING → MIGRATING and DECODING → RESERVING.
 */
final class DecodeStreamFollower {
  private static final Logger LOG = LogManager.getLogger(DecodeStreamFollower.class);

  private final ClusterView nodes;
  private final NodeClients clients;
  private final RouterMetrics metrics;
  private final Ticker ticker;
  private final NodeSelector selector;
  private final RequestOutcomes outcomes;
  private final FailureHandling failures;
  private final OverloadGuard overload;
  private final Consumer<InFlightRequest> restart;
  private final AtomicLong migrationsFollowed = new AtomicLong();

  /**
   * @param restart continues a request that lost its decode node (now RESERVING) elsewhere
   */
  DecodeStreamFollower(
      RouterSettings settings,
      NodeSelector selector,
      RequestOutcomes outcomes,
      OverloadGuard overload,
      Consumer<InFlightRequest> restart) {
    this.nodes = settings.nodes();
    this.clients = settings.clients();
    this.metrics = settings.metrics();
    this.ticker = settings.ticker();
    this.failures = settings.failures();
    this.selector = selector;
    this.outcomes = outcomes;
    this.overload = overload;
    this.restart = restart;
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
    DecodeCall call =
        new DecodeCall(
            f.requestId(),
            f.reservation(),
            f.prompt(),
            first,
            f.request().sampling(),
            f.prepared().seed(),
            f.deadlineNanos(),
            first == null ? f.prepared().images() : List.of(),
            f.prepared().positionDelta());
    start(f, d, 0, listener -> clients.decode(d, call, listener));
  }

  /**
   * PREFILLING → DECODING after a decode node was lost: the reservation holds the KV of the prompt
   * and of every delivered token but the last (pushed by a prefill node, or computed by the decode
   * node itself when {@code localPrefill}); the stream carries the tokens after the delivered ones.
   */
  void resume(InFlightRequest f, boolean localPrefill) {
    if (!f.startDecoding()) {
      return;
    }
    NodeInfo d = f.decodeNode();
    int[] generated = f.delivered().ids();
    ResumeCall call =
        new ResumeCall(
            f.requestId(),
            f.reservation(),
            f.prompt(),
            generated,
            f.request().sampling(),
            f.prepared().seed(),
            f.deadlineNanos(),
            localPrefill,
            localPrefill ? f.prepared().images() : List.of(),
            f.prepared().positionDelta());
    start(f, d, generated.length, listener -> clients.resume(d, call, listener));
  }

  /** Opens a stream on {@code node} whose first token has index {@code firstIndex}. */
  private void start(
      InFlightRequest f, NodeInfo node, int firstIndex, Function<DecodeListener, Call> opener) {
    selector.decodeStarted(node.id());
    long stream = f.delivered().open(node, ticker.read());
    Call call = opener.apply(new Stream(f, node, stream, firstIndex));
    if (!f.decodeCallOpened(call)) {
      call.cancel("request ended");
    }
  }

  /**
   * Gives up {@code f}'s decode stream if it has been silent for {@code timeout} at {@code now}, or
   * for {@code goneSilence} while its node is no longer in the registry: the stream is cancelled
   * (nothing it still sends is taken) and the request continues on another decode node.
   */
  void giveUpIfSilent(InFlightRequest f, long now, long timeoutNanos, long goneSilenceNanos) {
    DeliveredTokens d = f.delivered();
    NodeInfo node;
    String what;
    synchronized (d) {
      long stream = d.current();
      node = d.currentNode();
      if (stream == 0 || node == null) {
        return;
      }
      long silent = d.silentFor(now);
      boolean gone = nodes.get(node.id()).isEmpty();
      if (silent >= timeoutNanos) {
        what = "sent nothing for " + millis(silent) + " ms";
      } else if (gone && silent >= goneSilenceNanos) {
        what = "left the cluster and sent nothing for " + millis(silent) + " ms";
      } else {
        return;
      }
      d.end(stream);
    }
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      Call call = f.takeDecodeCall();
      streamEnded(f, node);
      if (call != null) {
        call.cancel("decode node " + node.id() + " " + what + "; the router gave its stream up");
      }
      lost(f, node, RouterMetrics.MIGRATION_DECODE_NODE_SILENT, what);
    }
  }

  private static long millis(long nanos) {
    return TimeUnit.NANOSECONDS.toMillis(nanos);
  }

  private void streamEnded(InFlightRequest f, NodeInfo node) {
    selector.decodeEnded(node.id());
    f.decodeStreamEnded();
  }

  /**
   * {@code f} lost decode node {@code node}: it continues elsewhere from the tokens delivered, or
   * fails when it has lost its decode node more often than the limit allows.
   */
  private void lost(InFlightRequest f, NodeInfo node, String reason, String what) {
    if (f.isFinished()) {
      return;
    }
    DeliveredTokens d = f.delivered();
    d.lost(node.id(), what);
    int n = d.count();
    int maxTokens = f.request().sampling().maxTokens();
    if (n >= maxTokens && !clients.supportsLocalPrefill()) {
      // Every token was delivered, only the completion was lost, and no decode node can replay
      // them without a prefill to say how it finished: it reached max_tokens.
      outcomes.complete(f, "length", null, n, 0);
      return;
    }
    int losses = d.losses().size();
    if (losses > failures.migrationLimit()) {
      outcomes.fail(
          f,
          RouterMetrics.REJECT_MIGRATION_LIMIT,
          ServingException.unavailable(
              "request "
                  + f.requestId()
                  + " lost its decode node "
                  + (losses == 1 ? "" : losses + " times ")
                  + "("
                  + d.describeLosses()
                  + ") after "
                  + n
                  + " of its tokens were delivered, and its moves to another decode node are"
                  + " spent (pdserve.router.migration-limit = "
                  + failures.migrationLimit()
                  + "); nothing of it runs any more, so retrying the request is safe"));
      return;
    }
    if (!f.restartAfterDecodeLoss()) {
      return;
    }
    metrics.migrated(reason);
    LOG.warn(
        "request {} lost decode node {} ({}) after {} tokens; continuing it on another decode node"
            + " ({} of at most {} moves)",
        f.requestId(),
        node.id(),
        what,
        n,
        losses,
        failures.migrationLimit());
    restart.accept(f);
  }

  /**
   * Whether a stream's error means its node is gone (so the request may continue elsewhere):
   * UNAVAILABLE — the node died or shut down, the connection was reset, the stream broke off —
   * except routed experts without a live shard, which every decode node would meet. Every other
   * class is the node's (or the request's) answer: a deadline, a cancel, a refusal.
   */
  static boolean meansNodeLost(ServingException e) {
    return e.kind() == ServingException.Kind.UNAVAILABLE
        && !(e instanceof ExpertsUnavailableException);
  }

  /** One decode stream of a request: its events, while it is the request's current stream. */
  private final class Stream implements DecodeListener {
    private final InFlightRequest f;
    private final NodeInfo node;
    private final long number;
    private int next;

    Stream(InFlightRequest f, NodeInfo node, long number, int firstIndex) {
      this.f = f;
      this.node = node;
      this.number = number;
      this.next = firstIndex;
    }

    @Override
    public void onDelta(int[] ids, String text, float[] logprobs) {
      DeliveredTokens d = f.delivered();
      synchronized (d) { // checked and delivered under one lock: a given-up stream sends nothing
        if (!d.isCurrent(number)) {
          return;
        }
        long now = ticker.read();
        d.heard(now);
        int start = next;
        next += ids.length;
        int skip = Math.max(0, d.count() - start);
        if (skip > 0 && ids.length > 0) {
          if (skip >= ids.length) {
            return;
          }
          ids = Arrays.copyOfRange(ids, skip, ids.length);
          logprobs =
              logprobs.length == 0 ? logprobs : Arrays.copyOfRange(logprobs, skip, logprobs.length);
        }
        d.append(ids);
        if (!f.isFinished()) {
          if (ids.length > 0 && f.tokensArrived(ids.length, now, metrics)) {
            overload.firstToken(f, now);
          }
          f.sink().onDelta(ids, text, logprobs);
        }
      }
    }

    @Override
    public void onComplete(
        String finishReason,
        String stopReason,
        int promptTokens,
        int completionTokens,
        int cachedTokens) {
      if (!f.delivered().end(number)) {
        return;
      }
      try (CloseableThreadContext.Instance ctx = f.logContext()) {
        streamEnded(f, node);
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
      if (!f.delivered().end(number)) {
        return;
      }
      try (CloseableThreadContext.Instance ctx = f.logContext()) {
        streamEnded(f, node);
        if (error instanceof ExpertsUnavailableException) {
          // Another decode node needs the same experts: moving the request would fail again.
          outcomes.fail(f, RouterMetrics.REJECT_EXPERTS_UNAVAILABLE, error);
        } else if (meansNodeLost(error)) {
          lost(f, node, RouterMetrics.MIGRATION_DECODE_NODE_LOST, error.toString());
        } else if (error.kind() == ServingException.Kind.NOT_FOUND) {
          // The node forgot the reservation (it expired while the node was frozen, or was
          // released): nothing of the request runs there, so continuing it elsewhere is safe.
          lost(f, node, RouterMetrics.MIGRATION_DECODE_STATE_LOST, error.toString());
        } else {
          outcomes.fail(f, RouterMetrics.reasonOf(error), error);
        }
      }
    }

    @Override
    public void onMigrated(Migrated m) {
      if (!f.delivered().end(number)) {
        return;
      }
      try (CloseableThreadContext.Instance ctx = f.logContext()) {
        streamEnded(f, node);
        migrated(f, node, m);
      }
    }
  }

  /** DECODING → MIGRATING → DECODING: continue the stream where a draining node moved it. */
  private void migrated(InFlightRequest f, NodeInfo from, Migrated m) {
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
    int delivered = f.delivered().count();
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
    metrics.migrated(RouterMetrics.MIGRATION_DRAIN);
    ResumeCall call =
        new ResumeCall(
            f.requestId(),
            r,
            f.prompt(),
            m.generatedIds(),
            f.request().sampling(),
            f.prepared().seed(),
            f.deadlineNanos(),
            false,
            List.of(),
            f.prepared().positionDelta());
    start(f, target, n, listener -> clients.resume(target, call, listener));
  }
}
