package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.KvFailurePolicy;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.NodeClients.PrefillCall;
import dev.pdserve.router.NodeClients.ReserveCall;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Runs a request that got a running slot up to its decode stream: checks the deadline it may have
 * passed while queued, reserves KV on a decode node (the next one when one refuses), prefills on a
 * prefill node (prefix-aware when configured), then hands it to the {@link DecodeStreamFollower}.
 *
 * <p>A prefill that fails with UNAVAILABLE (its node died or went away during the prefill or the KV
 * push) is, under {@link KvFailurePolicy#RECOMPUTE}, computed again: the reservation is released —
 * which cancels its transfer on the decode node, so nothing the failed prefill still pushes is
 * written — a fresh one is made, and the prefill goes to another prefill node (the same one only
 * when no other is ACTIVE), up to {@link RouterOptions#prefillAttempts()} prefills in all. Under
 * {@link KvFailurePolicy#FAIL} the request ends with UNAVAILABLE instead.
 *
 * <p>It also continues requests that lost their decode node ({@link #restart}): a reservation on
 * another decode node for the prompt and the tokens delivered, their KV computed by a prefill node
 * (a prompt of the prompt and every delivered token but the last) or, when that is short enough to
 * prefill locally, by the decode node itself; then the follower resumes the stream there.
 *
 * <p>Owns the transitions QUEUED → RESERVING → PREFILLING and PREFILLING → RESERVING.
 */
final class RequestRunner {
  private static final Logger LOG = LogManager.getLogger(RequestRunner.class);

  private final RouterOptions options;
  private final ClusterView nodes;
  private final NodeClients clients;
  private final PrefixRouting prefixRouting;
  private final FailureHandling failures;
  private final RouterMetrics metrics;
  private final Ticker ticker;
  private final NodeSelector selector;
  private final PrefixIndex prefixIndex; // null: prefix-aware routing off
  private final DecodeStreamFollower follower;
  private final RequestOutcomes outcomes;
  private final AtomicLong localPrefills = new AtomicLong();
  private final AtomicLong prefixRouted = new AtomicLong();

  /** The nodes one run through reservation and prefill tried. */
  private static final class Attempt {
    /** Decode nodes asked for the current reservation. */
    final List<String> decodeTried = new ArrayList<>();

    /** Prefill nodes asked, in order (one may repeat when no other is ACTIVE). */
    final List<String> prefillTried = new ArrayList<>();
  }

  RequestRunner(
      RouterSettings settings,
      NodeSelector selector,
      PrefixIndex prefixIndex,
      DecodeStreamFollower follower,
      RequestOutcomes outcomes) {
    this.options = settings.options();
    this.nodes = settings.nodes();
    this.clients = settings.clients();
    this.prefixRouting = settings.prefixRouting();
    this.failures = settings.failures();
    this.metrics = settings.metrics();
    this.ticker = settings.ticker();
    this.selector = selector;
    this.prefixIndex = prefixIndex;
    this.follower = follower;
    this.outcomes = outcomes;
  }

  /** Requests whose prompt the decode node prefilled itself. */
  long localPrefills() {
    return localPrefills.get();
  }

  /** Requests sent to a prefill node chosen because it likely held a prefix of the prompt. */
  long prefixRouted() {
    return prefixRouted.get();
  }

  /** QUEUED → RESERVING: the request got a running slot. */
  void start(InFlightRequest f) {
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      long now = ticker.read();
      if (!f.startReserving(now)) {
        return;
      }
      long deadline = f.deadlineNanos();
      if (deadline != 0 && now - deadline > 0) {
        outcomes.fail(
            f,
            RouterMetrics.REJECT_DEADLINE,
            ServingException.deadline(
                "deadline passed while request " + f.requestId() + " waited in the router queue"));
        return;
      }
      LOG.debug(
          "request {} started: {} prompt tokens, max_tokens {}, {} ms queued",
          f.requestId(),
          f.prompt().length,
          f.request().sampling().maxTokens(),
          (now - f.prepared().arrivalNanos()) / 1_000_000);
      reserve(f, new Attempt());
    }
  }

  /**
   * RESERVING after the request lost its decode node ({@link
   * InFlightRequest#restartAfterDecodeLoss}): continues it on another decode node from the tokens
   * delivered.
   */
  void restart(InFlightRequest f) {
    try (CloseableThreadContext.Instance ctx = f.logContext()) {
      reserve(f, new Attempt());
    }
  }

  /** Whether {@code f} is being continued after losing a decode node. */
  private static boolean continuing(InFlightRequest f) {
    return !f.delivered().losses().isEmpty();
  }

  private void reserve(InFlightRequest f, Attempt a) {
    List<String> excluded = new ArrayList<>(f.delivered().lostNodeIds());
    excluded.addAll(a.decodeTried);
    NodeInfo d = selector.chooseDecode(nodes.active(NodeRole.DECODE), excluded);
    if (d == null) {
      if (continuing(f)) {
        continuationFailed(
            f,
            ServingException.unavailable(
                "no other decode node could take it (asked "
                    + a.decodeTried
                    + "; decode nodes: "
                    + nodes.describe(NodeRole.DECODE)
                    + ")"));
      } else if (a.decodeTried.isEmpty()) {
        outcomes.fail(
            f,
            RouterMetrics.REJECT_NO_DECODE_NODE,
            ServingException.unavailable(
                "no ACTIVE decode node in the cluster (decode nodes: "
                    + nodes.describe(NodeRole.DECODE)
                    + ")"));
      } else {
        outcomes.fail(
            f,
            RouterMetrics.REJECT_KV_EXHAUSTED,
            ServingException.exhausted(
                "every decode node refused the request's KV reservation (tried "
                    + a.decodeTried
                    + "); retry after 500 ms"));
      }
      return;
    }
    a.decodeTried.add(d.id());
    int n = f.delivered().count();
    int maxTokens = f.request().sampling().maxTokens();
    // After a loss: KV for the prompt and every delivered token but the last; room for the rest.
    ReserveCall call =
        new ReserveCall(
            f.requestId(),
            f.prompt().length + Math.max(0, n - 1),
            n == 0 ? maxTokens : Math.max(1, maxTokens - n + 1),
            f.deadlineNanos());
    clients
        .reserve(d, call)
        .whenComplete(
            (r, err) -> {
              try (CloseableThreadContext.Instance ctx = f.logContext()) {
                if (err != null) {
                  refused(f, d, a, asServing(err));
                } else if (!f.reservationGranted(d, r, ticker.read())) {
                  clients.release(d, r.transferId()); // the request ended meanwhile
                } else {
                  reserved(f, d, r, a);
                }
              }
            });
  }

  private void refused(InFlightRequest f, NodeInfo d, Attempt a, ServingException e) {
    if (f.isFinished()) {
      return;
    }
    if (e.kind() == ServingException.Kind.RESOURCE_EXHAUSTED
        || e.kind() == ServingException.Kind.UNAVAILABLE) {
      LOG.debug("decode node {} refused {}: {}", d.id(), f.requestId(), e.getMessage());
      reserve(f, a);
    } else {
      failed(f, RouterMetrics.reasonOf(e), e);
    }
  }

  /** RESERVING → PREFILLING done: prefill on a prefill node, or let the decode node do it. */
  private void reserved(InFlightRequest f, NodeInfo d, NodeClients.Reserved r, Attempt a) {
    LOG.debug(
        "request {} reserved KV on decode node {} (transfer {})",
        f.requestId(),
        d.id(),
        r.transferId());
    int n = f.delivered().count();
    if (n == 0) {
      if (f.prepared().localPrefill()) {
        localPrefills.incrementAndGet();
        follower.open(f, null);
      } else {
        prefill(f, a);
      }
      return;
    }
    int kvTokens = f.prompt().length + n - 1;
    int threshold = prefixRouting.localPrefillThreshold();
    // Every token delivered: only the completion was lost. The decode node's replay of the tokens
    // finishes the request (with its true finish reason) before it would compute any KV.
    boolean allDelivered = n >= f.request().sampling().maxTokens();
    if ((allDelivered || (threshold > 0 && kvTokens <= threshold))
        && clients.supportsLocalPrefill()) {
      follower.resume(f, true); // the decode node computes the KV itself
    } else {
      prefill(f, a);
    }
  }

  /** The prompt a prefill computes: the request's, or after a loss also the tokens delivered. */
  private static int[] prefillPrompt(InFlightRequest f) {
    int[] generated = f.delivered().ids();
    if (generated.length == 0) {
      return f.prompt();
    }
    int[] prompt = f.prompt();
    int[] out = Arrays.copyOf(prompt, prompt.length + generated.length - 1);
    System.arraycopy(generated, 0, out, prompt.length, generated.length - 1);
    return out;
  }

  private void prefill(InFlightRequest f, Attempt a) {
    boolean continuation = f.delivered().count() > 0;
    int[] prompt = prefillPrompt(f);
    long[] hashes = continuation ? null : f.prepared().prefixHashes();
    int promptTokens = prompt.length;
    int maxBlocks = hashes == null ? 0 : (promptTokens - 1) / prefixRouting.hasher().blockSize();
    NodeInfo p = choosePrefill(a.prefillTried, hashes, maxBlocks);
    if (p == null && !a.prefillTried.isEmpty()) {
      p = choosePrefill(List.of(), hashes, maxBlocks); // none untried: try one again
    }
    if (p == null) {
      failed(
          f,
          RouterMetrics.REJECT_NO_PREFILL_NODE,
          ServingException.unavailable(
              "no ACTIVE prefill node could take request "
                  + f.requestId()
                  + " (tried "
                  + a.prefillTried
                  + "; prefill nodes: "
                  + nodes.describe(NodeRole.PREFILL)
                  + ")"));
      return;
    }
    NodeInfo node = p;
    a.prefillTried.add(node.id());
    int predicted =
        hashes == null || prefixIndex == null
            ? 0
            : prefixIndex.cachedTokens(node.id(), hashes, maxBlocks);
    if (predicted > 0) {
      prefixRouted.incrementAndGet();
      LOG.debug(
          "request {}: prefill node {} likely holds {} of {} prompt tokens",
          f.requestId(),
          node.id(),
          predicted,
          promptTokens);
    }
    selector.prefillStarted(node.id(), promptTokens);
    PrefillCall call =
        new PrefillCall(
            f.requestId(),
            prompt,
            f.request().sampling(),
            f.prepared().seed(),
            f.reservation(),
            f.deadlineNanos(),
            f.prepared().images());
    clients
        .prefill(
            node,
            call,
            c -> {
              if (!f.prefillCallOpened(c)) {
                c.cancel("request ended");
              }
            })
        .whenComplete(
            (first, err) -> {
              try (CloseableThreadContext.Instance ctx = f.logContext()) {
                selector.prefillEnded(node.id(), promptTokens);
                f.prefillCallEnded();
                if (f.isFinished()) {
                  return; // ending it released the reservation
                }
                if (err != null) {
                  prefillFailed(f, node, a, asServing(err));
                  return;
                }
                LOG.debug(
                    "request {} prefilled on {}: {} KV bytes moved to decode node {}",
                    f.requestId(),
                    node.id(),
                    first.kvBytes(),
                    f.decodeNode().id());
                if (continuation) {
                  follower.resume(f, false); // its first token is one the client already has
                  return;
                }
                if (prefixIndex != null && hashes != null) {
                  prefixIndex.served(
                      node.id(),
                      hashes,
                      predicted,
                      first.cachedTokens(),
                      first.cachedPromptBlocks());
                }
                follower.open(f, first);
              }
            });
  }

  /** An ACTIVE prefill node not in {@code exclude} (prefix-aware when configured), or null. */
  private NodeInfo choosePrefill(List<String> exclude, long[] hashes, int maxBlocks) {
    List<NodeInfo> active = nodes.active(NodeRole.PREFILL);
    if (prefixIndex == null || hashes == null) {
      return selector.choosePrefill(active, exclude);
    }
    return selector.choosePrefill(
        active,
        exclude,
        n -> prefixIndex.cachedTokens(n.id(), hashes, maxBlocks),
        prefixRouting.cachedTokenWeight());
  }

  private void prefillFailed(InFlightRequest f, NodeInfo p, Attempt a, ServingException e) {
    if (e.kind() != ServingException.Kind.UNAVAILABLE) {
      failed(f, RouterMetrics.reasonOf(e), e);
      return;
    }
    if (e instanceof ExpertsUnavailableException) {
      // Not the prefill node's fault: another prefill node needs the same experts.
      failed(f, RouterMetrics.REJECT_EXPERTS_UNAVAILABLE, e);
      return;
    }
    if (failures.kvFailurePolicy() == KvFailurePolicy.FAIL) {
      failed(
          f,
          RouterMetrics.reasonOf(e),
          ServingException.unavailable(
              "prefill node "
                  + p.id()
                  + " failed during the prefill or KV push of request "
                  + f.requestId()
                  + " ("
                  + e.getMessage()
                  + "); pdserve.kv.failure-policy is fail, so its KV is not computed again;"
                  + " nothing of it runs any more, so retrying the request is safe",
              e));
      return;
    }
    if (a.prefillTried.size() >= options.prefillAttempts()) {
      failed(f, RouterMetrics.reasonOf(e), e);
      return;
    }
    InFlightRequest.Held held = f.restartAfterPrefillLoss();
    if (held == null) {
      return; // ended meanwhile
    }
    // Releasing cancels the transfer on the decode node: a push still under way is refused there.
    held.stop(clients, "prefill node " + p.id() + " failed; the KV is computed again");
    metrics.migrated(RouterMetrics.MIGRATION_PREFILL_NODE_LOST);
    LOG.warn(
        "prefill node {} failed for {}, computing its KV again on another: {}",
        p.id(),
        f.requestId(),
        e.getMessage());
    a.decodeTried.clear();
    reserve(f, a);
  }

  /** Ends {@code f} with {@code e}; one being continued after a loss says so. */
  private void failed(InFlightRequest f, String reason, ServingException e) {
    if (continuing(f)) {
      continuationFailed(f, e);
    } else {
      outcomes.fail(f, reason, e);
    }
  }

  /** Continuing {@code f} after it lost its decode node failed with {@code e}. */
  private void continuationFailed(InFlightRequest f, ServingException e) {
    if (e.kind() == ServingException.Kind.DEADLINE_EXCEEDED
        || e.kind() == ServingException.Kind.CANCELLED) {
      outcomes.fail(f, RouterMetrics.reasonOf(e), e); // the request's own end, not the loss
      return;
    }
    DeliveredTokens d = f.delivered();
    String message =
        "request "
            + f.requestId()
            + " lost its decode node ("
            + d.describeLosses()
            + ") after "
            + d.count()
            + " of its tokens were delivered, and continuing it elsewhere failed: "
            + e.getMessage()
            + "; nothing of it runs any more, so retrying the request is safe";
    outcomes.fail(
        f,
        e instanceof ExpertsUnavailableException
            ? RouterMetrics.REJECT_EXPERTS_UNAVAILABLE
            : RouterMetrics.REJECT_MIGRATION_FAILED,
        e instanceof ExpertsUnavailableException
            ? new ExpertsUnavailableException(message, e)
            : ServingException.unavailable(message, e));
  }

  static ServingException asServing(Throwable t) {
    Throwable e = t;
    while ((e instanceof CompletionException || e instanceof ExecutionException)
        && e.getCause() != null) {
      e = e.getCause();
    }
    if (e instanceof ServingException se) {
      return se;
    }
    return new ServingException(ServingException.Kind.INTERNAL, GrpcErrors.describe(e), e);
  }
}
