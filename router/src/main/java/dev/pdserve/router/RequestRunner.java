package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.NodeClients.PrefillCall;
import dev.pdserve.router.NodeClients.ReserveCall;
import java.util.ArrayList;
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
 * prefill node (prefix-aware when configured; another one when one is UNAVAILABLE, up to {@link
 * RouterOptions#prefillAttempts()}), then hands it to the {@link DecodeStreamFollower}. Owns the
 * transitions QUEUED → RESERVING → PREFILLING.
 */
final class RequestRunner {
  private static final Logger LOG = LogManager.getLogger(RequestRunner.class);

  private final RouterOptions options;
  private final ClusterView nodes;
  private final NodeClients clients;
  private final PrefixRouting prefixRouting;
  private final Ticker ticker;
  private final NodeSelector selector;
  private final PrefixIndex prefixIndex; // null: prefix-aware routing off
  private final DecodeStreamFollower follower;
  private final RequestOutcomes outcomes;
  private final AtomicLong localPrefills = new AtomicLong();
  private final AtomicLong prefixRouted = new AtomicLong();

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
      reserve(f, new ArrayList<>());
    }
  }

  private void reserve(InFlightRequest f, List<String> tried) {
    NodeInfo d = selector.chooseDecode(nodes.active(NodeRole.DECODE), tried);
    if (d == null) {
      if (tried.isEmpty()) {
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
                    + tried
                    + "); retry after 500 ms"));
      }
      return;
    }
    tried.add(d.id());
    ReserveCall call =
        new ReserveCall(
            f.requestId(),
            f.prompt().length,
            f.request().sampling().maxTokens(),
            f.deadlineNanos());
    clients
        .reserve(d, call)
        .whenComplete(
            (r, err) -> {
              try (CloseableThreadContext.Instance ctx = f.logContext()) {
                if (err != null) {
                  refused(f, d, tried, asServing(err));
                } else if (!f.reservationGranted(d, r, ticker.read())) {
                  clients.release(d, r.transferId()); // the request ended meanwhile
                } else {
                  reserved(f, d, r);
                }
              }
            });
  }

  private void refused(InFlightRequest f, NodeInfo d, List<String> tried, ServingException e) {
    if (f.isFinished()) {
      return;
    }
    if (e.kind() == ServingException.Kind.RESOURCE_EXHAUSTED
        || e.kind() == ServingException.Kind.UNAVAILABLE) {
      LOG.debug("decode node {} refused {}: {}", d.id(), f.requestId(), e.getMessage());
      reserve(f, tried);
    } else {
      outcomes.fail(f, RouterMetrics.reasonOf(e), e);
    }
  }

  /** RESERVING → PREFILLING done: prefill on a prefill node, or let the decode node do it. */
  private void reserved(InFlightRequest f, NodeInfo d, NodeClients.Reserved r) {
    LOG.debug(
        "request {} reserved KV on decode node {} (transfer {})",
        f.requestId(),
        d.id(),
        r.transferId());
    if (f.prepared().localPrefill()) {
      localPrefills.incrementAndGet();
      follower.open(f, null);
    } else {
      prefill(f, new ArrayList<>());
    }
  }

  private void prefill(InFlightRequest f, List<String> tried) {
    long[] hashes = f.prepared().prefixHashes();
    int promptTokens = f.prompt().length;
    int maxBlocks = hashes == null ? 0 : (promptTokens - 1) / prefixRouting.hasher().blockSize();
    NodeInfo p =
        prefixIndex == null
            ? selector.choosePrefill(nodes.active(NodeRole.PREFILL), tried)
            : selector.choosePrefill(
                nodes.active(NodeRole.PREFILL),
                tried,
                n -> prefixIndex.cachedTokens(n.id(), hashes, maxBlocks),
                prefixRouting.cachedTokenWeight());
    if (p == null) {
      outcomes.fail(
          f,
          RouterMetrics.REJECT_NO_PREFILL_NODE,
          ServingException.unavailable(
              "no ACTIVE prefill node could take request "
                  + f.requestId()
                  + " (tried "
                  + tried
                  + "; prefill nodes: "
                  + nodes.describe(NodeRole.PREFILL)
                  + ")"));
      return;
    }
    tried.add(p.id());
    int predicted = prefixIndex == null ? 0 : prefixIndex.cachedTokens(p.id(), hashes, maxBlocks);
    if (predicted > 0) {
      prefixRouted.incrementAndGet();
      LOG.debug(
          "request {}: prefill node {} likely holds {} of {} prompt tokens",
          f.requestId(),
          p.id(),
          predicted,
          promptTokens);
    }
    selector.prefillStarted(p.id(), promptTokens);
    PrefillCall call =
        new PrefillCall(
            f.requestId(),
            f.prompt(),
            f.request().sampling(),
            f.prepared().seed(),
            f.reservation(),
            f.deadlineNanos());
    clients
        .prefill(
            p,
            call,
            c -> {
              if (!f.prefillCallOpened(c)) {
                c.cancel("request ended");
              }
            })
        .whenComplete(
            (first, err) -> {
              try (CloseableThreadContext.Instance ctx = f.logContext()) {
                selector.prefillEnded(p.id(), promptTokens);
                f.prefillCallEnded();
                if (f.isFinished()) {
                  return; // ending it released the reservation
                }
                if (err != null) {
                  prefillFailed(f, p, tried, asServing(err));
                  return;
                }
                LOG.debug(
                    "request {} prefilled on {}: {} KV bytes moved to decode node {}",
                    f.requestId(),
                    p.id(),
                    first.kvBytes(),
                    f.decodeNode().id());
                if (prefixIndex != null) {
                  prefixIndex.served(
                      p.id(), hashes, predicted, first.cachedTokens(), first.cachedPromptBlocks());
                }
                follower.open(f, first);
              }
            });
  }

  private void prefillFailed(
      InFlightRequest f, NodeInfo p, List<String> tried, ServingException e) {
    if (e.kind() == ServingException.Kind.UNAVAILABLE && tried.size() < options.prefillAttempts()) {
      LOG.warn(
          "prefill node {} unavailable for {}, retrying on another: {}",
          p.id(),
          f.requestId(),
          e.getMessage());
      prefill(f, tried);
      return;
    }
    outcomes.fail(f, RouterMetrics.reasonOf(e), e);
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
    return new ServingException(ServingException.Kind.INTERNAL, e.toString(), e);
  }
}
