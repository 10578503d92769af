package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeDirectory;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The request lifecycle: validate and tokenize, admit (bounded), reserve KV on a decode node,
 * prefill on a prefill node (which pushes the KV to the decode node over Flight), then stream the
 * decode node's tokens to the caller. Cancellation (client cancel, deadline, Abort) stops the work
 * on both nodes and frees the request's KV. Every accepted request ends with exactly one completion
 * or one error.
 *
 * <p>With {@link PrefixRouting}: the router hashes each prompt's blocks as the prefill nodes'
 * prefix caches do and prefers the prefill node likely to hold the longest prefix, weighed against
 * its queue ({@link PrefixIndex}); prompts short enough are prefilled by the decode node itself
 * (conditional disaggregation). While a request holds a KV reservation the router renews its lease
 * every lease/3, so a decode node frees the KV of a router that vanished.
 *
 * <p>Measured through {@link RouterMetrics} (timings per request, tokens, outcomes by reason). Log
 * lines of a request carry its id and the router's node id (the one in the log context the router
 * was built under) whichever thread runs the callback.
 */
public final class Router implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Router.class);
  private static final SecureRandom SEEDS = new SecureRandom();

  private final RouterOptions options;
  private final NodeDirectory nodes;
  private final NodeClients clients;
  private final PromptRenderer renderer;
  private final ModelConfig model;
  private final RouterMetrics metrics;
  private final String nodeId = LogContext.nodeId();
  private final NodeSelector selector = new NodeSelector();
  private final PrefixRouting prefixRouting;
  private final PrefixIndex prefixIndex; // null: prefix-aware routing off
  private final java.util.concurrent.ScheduledExecutorService leaseRenewer;
  private final java.util.concurrent.atomic.AtomicLong localPrefills =
      new java.util.concurrent.atomic.AtomicLong();
  private final java.util.concurrent.atomic.AtomicLong prefixRouted =
      new java.util.concurrent.atomic.AtomicLong();
  private final Map<String, Flight> active = new ConcurrentHashMap<>();
  private final java.util.concurrent.atomic.AtomicLong migrationsFollowed =
      new java.util.concurrent.atomic.AtomicLong();
  private final ArrayDeque<Flight> queue = new ArrayDeque<>();
  private int running; // guarded by queue
  private volatile boolean closed;
  private volatile String refusal; // set when the router drains: new requests get UNAVAILABLE

  public Router(
      RouterOptions options,
      NodeDirectory nodes,
      NodeClients clients,
      PromptRenderer renderer,
      ModelConfig model) {
    this(options, nodes, clients, renderer, model, RouterMetrics.NONE, PrefixRouting.disabled());
  }

  public Router(
      RouterOptions options,
      NodeDirectory nodes,
      NodeClients clients,
      PromptRenderer renderer,
      ModelConfig model,
      RouterMetrics metrics) {
    this(options, nodes, clients, renderer, model, metrics, PrefixRouting.disabled());
  }

  public Router(
      RouterOptions options,
      NodeDirectory nodes,
      NodeClients clients,
      PromptRenderer renderer,
      ModelConfig model,
      PrefixRouting prefixRouting) {
    this(options, nodes, clients, renderer, model, RouterMetrics.NONE, prefixRouting);
  }

  public Router(
      RouterOptions options,
      NodeDirectory nodes,
      NodeClients clients,
      PromptRenderer renderer,
      ModelConfig model,
      RouterMetrics metrics,
      PrefixRouting prefixRouting) {
    this.metrics = metrics;
    this.options = options;
    this.nodes = nodes;
    this.clients = clients;
    this.renderer = renderer;
    this.model = model;
    this.prefixRouting = prefixRouting;
    this.prefixIndex =
        prefixRouting.hasher() == null
            ? null
            : new PrefixIndex(
                prefixRouting.hasher().blockSize(), prefixRouting.trackedBlocksPerNode());
    this.leaseRenewer =
        java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "router-lease-renewer");
              t.setDaemon(true);
              return t;
            });
    leaseRenewer.scheduleWithFixedDelay(
        this::renewLeases, 100, 100, java.util.concurrent.TimeUnit.MILLISECONDS);
  }

  /** Requests whose prompt the decode node prefilled itself (conditional disaggregation). */
  public long localPrefills() {
    return localPrefills.get();
  }

  /** Requests sent to a prefill node chosen because it likely held a prefix of the prompt. */
  public long prefixRoutedRequests() {
    return prefixRouted.get();
  }

  /**
   * The router's view of prefill nodes' prefix caches, or null when prefix-aware routing is off.
   */
  public PrefixIndex prefixIndex() {
    return prefixIndex;
  }

  public ModelConfig model() {
    return model;
  }

  public RouterMetrics metrics() {
    return metrics;
  }

  /** A request in flight. */
  public final class Flight {
    final GenerateRequest req;
    final ResponseSink sink;
    final long deadlineNanos;
    int[] prompt;
    long[] hashes; // the prompt's full-block hashes, when prefix-aware routing is on
    boolean localPrefill;
    volatile long lastRenewNanos;
    long seed;
    volatile boolean finished;
    volatile String cancelledBecause;
    volatile boolean abortedByUser;
    volatile NodeClients.Call prefillCall;
    volatile NodeClients.Call decodeCall;
    volatile NodeInfo decodeNode;
    volatile NodeInfo prefillNode;
    volatile NodeClients.Reserved reserved;
    volatile boolean decodeStarted;
    final long arrivalNanos = System.nanoTime();
    volatile long startedNanos;
    volatile long firstTokenNanos;
    volatile long lastTokenNanos;

    /** Tokens received from decode streams so far (their index is the de-duplication key). */
    volatile int delivered;

    long startNanos = System.nanoTime();

    Flight(GenerateRequest req, ResponseSink sink, long deadlineNanos) {
      this.req = req;
      this.sink = sink;
      this.deadlineNanos = deadlineNanos;
    }

    /** Cancels the request (client went away or its deadline passed): no more output is sent. */
    public void cancel(String why) {
      try (CloseableThreadContext.Instance ctx = logContext(this)) {
        cancelledBecause = why;
        stopWork(why);
        if (Router.this.finish(this)) { // the caller is gone or out of time: nothing more is sent
          boolean late = deadlineNanos != 0 && System.nanoTime() - deadlineNanos >= 0;
          metrics.rejected(late ? RouterMetrics.REJECT_DEADLINE : RouterMetrics.REJECT_CANCELLED);
          LOG.debug("request {} cancelled: {}", req.requestId(), why);
        }
      }
    }

    /**
     * Tokens of a delta reached the router (decode callback thread; deltas of one request arrive in
     * order).
     */
    void tokensArrived(int n) {
      long now = System.nanoTime();
      if (firstTokenNanos == 0) {
        firstTokenNanos = now;
        metrics.firstToken(now - arrivalNanos, prompt.length, n);
      } else {
        metrics.nextTokens(now - lastTokenNanos, n);
      }
      lastTokenNanos = now;
    }

    private void stopWork(String why) {
      NodeClients.Call p = prefillCall;
      if (p != null) {
        p.cancel(why);
      }
      NodeClients.Call d = decodeCall;
      if (d != null) {
        d.cancel(why);
      }
      NodeClients.Reserved r = reserved;
      NodeInfo dn = decodeNode;
      if (r != null && dn != null && !decodeStarted) {
        clients.release(dn, r.transferId());
      }
    }
  }

  /**
   * Starts a request. Validation and admission errors are thrown (INVALID_ARGUMENT, ALREADY_EXISTS,
   * RESOURCE_EXHAUSTED, UNAVAILABLE); once it returns, every outcome goes to the sink exactly once.
   *
   * @param deadlineNanos absolute {@link System#nanoTime()} deadline, or 0 for none
   */
  public Flight submit(GenerateRequest req, ResponseSink sink, long deadlineNanos) {
    if (closed) {
      throw refuse(
          RouterMetrics.REJECT_SHUTTING_DOWN,
          ServingException.unavailable("router is shutting down"));
    }
    String refusing = refusal;
    if (refusing != null) {
      throw refuse(RouterMetrics.REJECT_SHUTTING_DOWN, ServingException.unavailable(refusing));
    }
    int[] prompt;
    SamplingParams params = req.sampling();
    try {
      prompt = renderer.render(req.prompt(), req.enableThinking());
      params.validate(prompt.length, model.maxPositions(), model.vocabSize());
    } catch (InvalidRequestException e) {
      throw refuse(RouterMetrics.REJECT_INVALID_ARGUMENT, ServingException.invalid(e.getMessage()));
    } catch (IllegalArgumentException e) {
      throw refuse(
          RouterMetrics.REJECT_INVALID_ARGUMENT,
          ServingException.invalid(String.valueOf(e.getMessage())));
    }
    if (nodes.active(NodeRole.PREFILL).isEmpty()) {
      throw refuse(
          RouterMetrics.REJECT_NO_PREFILL_NODE,
          ServingException.unavailable(
              "no ACTIVE prefill node in the cluster (prefill nodes: "
                  + nodes.describe(NodeRole.PREFILL)
                  + "); retry when one is up"));
    }
    if (nodes.active(NodeRole.DECODE).isEmpty()) {
      throw refuse(
          RouterMetrics.REJECT_NO_DECODE_NODE,
          ServingException.unavailable(
              "no ACTIVE decode node in the cluster (decode nodes: "
                  + nodes.describe(NodeRole.DECODE)
                  + "); retry when one is up"));
    }
    Flight f = new Flight(req, sink, deadlineNanos);
    f.prompt = prompt;
    f.seed = params.seed().orElseGet(SEEDS::nextLong);
    f.hashes = prefixIndex == null ? null : prefixRouting.hasher().hashes(prompt);
    f.localPrefill =
        prefixRouting.localPrefillThreshold() > 0
            && prompt.length <= prefixRouting.localPrefillThreshold()
            && clients.supportsLocalPrefill();
    if (active.putIfAbsent(req.requestId(), f) != null) {
      throw refuse(
          "already_exists",
          new ServingException(
              ServingException.Kind.ALREADY_EXISTS,
              "request id " + req.requestId() + " is already in flight; use a unique request_id"));
    }
    boolean startNow;
    synchronized (queue) {
      if (running < options.maxActive()) {
        running++;
        startNow = true;
      } else if (queue.size() < options.maxQueued()) {
        queue.add(f);
        startNow = false;
      } else {
        active.remove(req.requestId(), f);
        throw refuse(
            RouterMetrics.REJECT_QUEUE_FULL,
            ServingException.exhausted(
                "router queue is full: "
                    + running
                    + " requests running and "
                    + queue.size()
                    + " waiting (limits "
                    + options.maxActive()
                    + " and "
                    + options.maxQueued()
                    + "); retry after 1000 ms"));
      }
    }
    if (startNow) {
      start(f);
    }
    return f;
  }

  private ServingException refuse(String reason, ServingException e) {
    metrics.rejected(reason);
    return e;
  }

  /** Aborts a request by id: its stream ends with finish_reason "abort". */
  public boolean abort(String requestId) {
    Flight f = active.get(requestId);
    if (f == null) {
      return false;
    }
    try (CloseableThreadContext.Instance ctx = logContext(f)) {
      f.abortedByUser = true;
      // Finish first: the cancelled calls' own errors (CANCELLED) must not reach the client
      // before (or instead of) its "abort" completion.
      complete(f, "abort", null, 0, 0);
      f.stopWork("aborted by the client");
    }
    return true;
  }

  /** Decode streams this router continued on another decode node after a migration. */
  public long migrationsFollowed() {
    return migrationsFollowed.get();
  }

  /**
   * Starts draining: every new request is refused with UNAVAILABLE and {@code message} (say what to
   * do, e.g. retry on another replica); requests already taken run on. See {@link #awaitIdle}.
   */
  public void stopAccepting(String message) {
    this.refusal = java.util.Objects.requireNonNull(message, "message");
  }

  /** The message new requests are refused with since {@link #stopAccepting}, if draining. */
  public java.util.Optional<String> refusal() {
    return java.util.Optional.ofNullable(refusal);
  }

  /**
   * Waits until every request taken has ended (running and queued ones), or {@code timeout} passes.
   *
   * @return whether none is left
   */
  public boolean awaitIdle(java.time.Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!active.isEmpty()) {
      if (System.nanoTime() - deadline >= 0) {
        return false;
      }
      try {
        Thread.sleep(10);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return active.isEmpty();
      }
    }
    return true;
  }

  /** Requests taken and not yet ended: running or queued. */
  public int inFlight() {
    return active.size();
  }

  /** Requests being worked on (reserving, prefilling or decoding). */
  public int running() {
    synchronized (queue) {
      return running;
    }
  }

  public int queued() {
    synchronized (queue) {
      return queue.size();
    }
  }

  private CloseableThreadContext.Instance logContext(Flight f) {
    return LogContext.request(nodeId, f.req.requestId());
  }

  private void start(Flight f) {
    try (CloseableThreadContext.Instance ctx = logContext(f)) {
      if (f.finished) {
        return;
      }
      f.startedNanos = System.nanoTime();
      if (f.deadlineNanos != 0 && System.nanoTime() > f.deadlineNanos) {
        fail(
            f,
            RouterMetrics.REJECT_DEADLINE,
            ServingException.deadline(
                "deadline passed while request "
                    + f.req.requestId()
                    + " waited in the router queue"));
        return;
      }
      LOG.debug(
          "request {} started: {} prompt tokens, max_tokens {}, {} ms queued",
          f.req.requestId(),
          f.prompt.length,
          f.req.sampling().maxTokens(),
          (f.startedNanos - f.arrivalNanos) / 1_000_000);
      reserve(f, new ArrayList<>());
    }
  }

  private void reserve(Flight f, List<String> tried) {
    NodeInfo d = selector.chooseDecode(nodes.active(NodeRole.DECODE), tried);
    if (d == null) {
      if (tried.isEmpty()) {
        fail(
            f,
            RouterMetrics.REJECT_NO_DECODE_NODE,
            ServingException.unavailable(
                "no ACTIVE decode node in the cluster (decode nodes: "
                    + nodes.describe(NodeRole.DECODE)
                    + ")"));
      } else {
        fail(
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
    f.decodeNode = d;
    clients
        .reserve(
            d, f.req.requestId(), f.prompt.length, f.req.sampling().maxTokens(), f.deadlineNanos)
        .whenComplete(
            (r, err) -> {
              try (CloseableThreadContext.Instance ctx = logContext(f)) {
                if (err != null) {
                  ServingException e = asServing(err);
                  if (e.kind() == ServingException.Kind.RESOURCE_EXHAUSTED
                      || e.kind() == ServingException.Kind.UNAVAILABLE) {
                    LOG.debug(
                        "decode node {} refused {}: {}", d.id(), f.req.requestId(), e.getMessage());
                    reserve(f, tried);
                  } else {
                    fail(f, RouterMetrics.reasonOf(e), e);
                  }
                  return;
                }
                f.lastRenewNanos = System.nanoTime();
                f.reserved = r;
                if (f.finished) {
                  clients.release(d, r.transferId());
                  return;
                }
                LOG.debug(
                    "request {} reserved KV on decode node {} (transfer {})",
                    f.req.requestId(),
                    d.id(),
                    r.transferId());
                if (f.localPrefill) {
                  localPrefills.incrementAndGet();
                  decode(f, null);
                } else {
                  prefill(f, new ArrayList<>());
                }
              }
            });
  }

  private void prefill(Flight f, List<String> tried) {
    int maxBlocks =
        f.hashes == null ? 0 : (f.prompt.length - 1) / prefixRouting.hasher().blockSize();
    NodeInfo p =
        prefixIndex == null
            ? selector.choosePrefill(nodes.active(NodeRole.PREFILL), tried)
            : selector.choosePrefill(
                nodes.active(NodeRole.PREFILL),
                tried,
                n -> prefixIndex.cachedTokens(n.id(), f.hashes, maxBlocks),
                prefixRouting.cachedTokenWeight());
    if (p == null) {
      releaseReservation(f);
      fail(
          f,
          RouterMetrics.REJECT_NO_PREFILL_NODE,
          ServingException.unavailable(
              "no ACTIVE prefill node could take request "
                  + f.req.requestId()
                  + " (tried "
                  + tried
                  + "; prefill nodes: "
                  + nodes.describe(NodeRole.PREFILL)
                  + ")"));
      return;
    }
    tried.add(p.id());
    f.prefillNode = p;
    int predicted = prefixIndex == null ? 0 : prefixIndex.cachedTokens(p.id(), f.hashes, maxBlocks);
    if (predicted > 0) {
      prefixRouted.incrementAndGet();
      LOG.debug(
          "request {}: prefill node {} likely holds {} of {} prompt tokens",
          f.req.requestId(),
          p.id(),
          predicted,
          f.prompt.length);
    }
    selector.prefillStarted(p.id(), f.prompt.length);
    clients
        .prefill(
            p,
            f.req.requestId(),
            f.prompt,
            f.req.sampling(),
            f.seed,
            f.reserved,
            f.deadlineNanos,
            call -> f.prefillCall = call)
        .whenComplete(
            (first, err) -> {
              try (CloseableThreadContext.Instance ctx = logContext(f)) {
                selector.prefillEnded(p.id(), f.prompt.length);
                f.prefillCall = null;
                if (f.finished) {
                  releaseReservation(f);
                  return;
                }
                if (err != null) {
                  ServingException e = asServing(err);
                  if (e.kind() == ServingException.Kind.UNAVAILABLE
                      && tried.size() < options.prefillAttempts()) {
                    LOG.warn(
                        "prefill node {} unavailable for {}, retrying on another: {}",
                        p.id(),
                        f.req.requestId(),
                        e.getMessage());
                    prefill(f, tried);
                    return;
                  }
                  releaseReservation(f);
                  fail(f, RouterMetrics.reasonOf(e), e);
                  return;
                }
                LOG.debug(
                    "request {} prefilled on {}: {} KV bytes moved to decode node {}",
                    f.req.requestId(),
                    p.id(),
                    first.kvBytes(),
                    f.decodeNode.id());
                if (prefixIndex != null) {
                  prefixIndex.served(
                      p.id(),
                      f.hashes,
                      predicted,
                      first.cachedTokens(),
                      first.cachedPromptBlocks());
                }
                decode(f, first);
              }
            });
  }

  /**
   * Streams the decode node's tokens; {@code first} null: the decode node prefills the prompt
   * itself.
   */
  private void decode(Flight f, NodeClients.FirstToken first) {
    NodeInfo d = f.decodeNode;
    f.decodeStarted = true;
    selector.decodeStarted(d.id());
    NodeClients.DecodeListener listener = decodeListener(f, d, 0);
    f.decodeCall =
        first == null
            ? clients.decodeWithLocalPrefill(
                d,
                f.req.requestId(),
                f.reserved,
                f.prompt,
                f.req.sampling(),
                f.seed,
                f.deadlineNanos,
                listener)
            : clients.decode(
                d,
                f.req.requestId(),
                f.reserved,
                f.prompt,
                first,
                f.req.sampling(),
                f.seed,
                f.deadlineNanos,
                listener);
    if (f.finished) {
      f.decodeCall.cancel("request ended");
    }
  }

  /**
   * Follows one decode stream whose first token has index {@code firstIndex} in the request's
   * output. A token whose index was delivered already (a stream resumed after a migration that
   * overlaps the one before) is dropped, so the client never sees a token twice.
   */
  private NodeClients.DecodeListener decodeListener(Flight f, NodeInfo d, int firstIndex) {
    return new NodeClients.DecodeListener() {
      private int next = firstIndex;

      @Override
      public void onDelta(int[] ids, String text, float[] logprobs) {
        int start = next;
        next += ids.length;
        int skip = Math.max(0, f.delivered - start);
        if (skip > 0 && ids.length > 0) {
          if (skip >= ids.length) {
            return;
          }
          ids = java.util.Arrays.copyOfRange(ids, skip, ids.length);
          logprobs =
              logprobs.length == 0
                  ? logprobs
                  : java.util.Arrays.copyOfRange(logprobs, skip, logprobs.length);
        }
        f.delivered = Math.max(f.delivered, next);
        if (!f.finished) {
          if (ids.length > 0) {
            f.tokensArrived(ids.length);
          }
          f.sink.onDelta(ids, text, logprobs);
        }
      }

      @Override
      public void onComplete(
          String finishReason,
          String stopReason,
          int promptTokens,
          int completionTokens,
          int cachedTokens) {
        try (CloseableThreadContext.Instance ctx = logContext(f)) {
          selector.decodeEnded(d.id());
          if ("abort".equals(finishReason) && !f.abortedByUser) {
            // Nobody here asked to stop: the decode node cut the sequence (its reservation was
            // released). Partial output is not an answer; say so instead of finishing quietly.
            if (!f.finished) {
              fail(
                  f,
                  "decode_aborted",
                  ServingException.unavailable(
                      "decode node "
                          + d.id()
                          + " ended request "
                          + f.req.requestId()
                          + " after "
                          + completionTokens
                          + " tokens without finishing it (its KV reservation was released);"
                          + " retry the request"));
            }
            return;
          }
          complete(f, finishReason, stopReason, completionTokens, cachedTokens);
        }
      }

      @Override
      public void onError(ServingException error) {
        try (CloseableThreadContext.Instance ctx = logContext(f)) {
          selector.decodeEnded(d.id());
          if (!f.finished) {
            fail(f, RouterMetrics.reasonOf(error), error);
          }
        }
      }

      @Override
      public void onMigrated(NodeClients.Migrated m) {
        try (CloseableThreadContext.Instance ctx = logContext(f)) {
          selector.decodeEnded(d.id());
          migrated(f, d, m);
        }
      }
    };
  }

  /** The decode node drained: continue the request's stream on the node its sequence moved to. */
  private void migrated(Flight f, NodeInfo from, NodeClients.Migrated m) {
    try (CloseableThreadContext.Instance ctx = logContext(f)) {
      NodeInfo target =
          nodes
              .get(m.targetNodeId())
              .orElseGet(
                  () ->
                      new NodeInfo(
                          m.targetNodeId(),
                          NodeRole.DECODE,
                          dev.pdserve.core.cluster.NodeState.ACTIVE,
                          0,
                          "",
                          m.targetGrpcAddress(),
                          "",
                          "",
                          null,
                          0));
      // The target's reservation has a lease like the first one (one cluster, one lease
      // setting): renew it, or the target frees the moved sequence when the lease runs out.
      long lease = f.reserved != null ? f.reserved.leaseMillis() : 0;
      NodeClients.Reserved r = new NodeClients.Reserved(m.transferId(), "", 0, lease);
      int n = m.generatedIds().length;
      if (f.finished) {
        clients.release(target, r.transferId());
        return;
      }
      if (f.delivered < n) {
        clients.release(target, r.transferId());
        fail(
            f,
            "migration_lost",
            ServingException.unavailable(
                "decode node "
                    + from.id()
                    + " moved request "
                    + f.req.requestId()
                    + " after "
                    + n
                    + " tokens but only "
                    + f.delivered
                    + " arrived; retry the request"));
        return;
      }
      LOG.info(
          "request {} continues on decode node {} after {} tokens (moved from {})",
          f.req.requestId(),
          target.id(),
          n,
          from.id());
      migrationsFollowed.incrementAndGet();
      f.decodeNode = target;
      f.reserved = r;
      f.lastRenewNanos = System.nanoTime();
      f.decodeStarted = true;
      selector.decodeStarted(target.id());
      f.decodeCall =
          clients.resume(
              target,
              f.req.requestId(),
              r,
              f.prompt,
              m.generatedIds(),
              f.req.sampling(),
              f.seed,
              f.deadlineNanos,
              decodeListener(f, target, n));
      if (f.finished) {
        f.decodeCall.cancel("request ended");
      }
    }
  }

  private void releaseReservation(Flight f) {
    if (f.reserved != null && f.decodeNode != null && !f.decodeStarted) {
      clients.release(f.decodeNode, f.reserved.transferId());
    }
  }

  private void complete(
      Flight f, String finishReason, String stopReason, int completionTokens, int cachedTokens) {
    if (finish(f)) {
      long now = System.nanoTime();
      long started = f.startedNanos == 0 ? now : f.startedNanos;
      long first = f.firstTokenNanos;
      metrics.finished(
          finishReason,
          started - f.arrivalNanos,
          first == 0 ? -1 : first - started,
          first == 0 ? -1 : f.lastTokenNanos - first,
          now - f.arrivalNanos);
      f.sink.onComplete(finishReason, stopReason, f.prompt.length, completionTokens, cachedTokens);
      LOG.debug(
          "request {} finished ({}): {} tokens in {} ms",
          f.req.requestId(),
          finishReason,
          completionTokens,
          (now - f.arrivalNanos) / 1_000_000);
    }
  }

  private void fail(Flight f, String reason, ServingException e) {
    if (finish(f)) {
      metrics.rejected(reason);
      LOG.info("request {} failed ({}): {}", f.req.requestId(), reason, e.toString());
      f.sink.onError(e);
    }
  }

  /** Marks the flight finished exactly once, frees its slot and starts the next queued request. */
  private boolean finish(Flight f) {
    synchronized (f) {
      if (f.finished) {
        return false;
      }
      f.finished = true;
    }
    active.remove(f.req.requestId(), f);
    Flight next = null;
    synchronized (queue) {
      if (!queue.remove(f)) {
        running--;
        while (!queue.isEmpty() && running < options.maxActive()) {
          Flight q = queue.poll();
          if (!q.finished) {
            running++;
            next = q;
            break;
          }
        }
      }
    }
    if (next != null) {
      Flight n = next;
      java.util.concurrent.ForkJoinPool.commonPool().execute(() -> start(n));
    }
    return true;
  }

  private static ServingException asServing(Throwable t) {
    Throwable e = t;
    while ((e instanceof java.util.concurrent.CompletionException
            || e instanceof java.util.concurrent.ExecutionException)
        && e.getCause() != null) {
      e = e.getCause();
    }
    if (e instanceof ServingException se) {
      return se;
    }
    return new ServingException(ServingException.Kind.INTERNAL, e.toString(), e);
  }

  /** Renews, in one call per decode node, the leases of reservations due (older than lease/3). */
  private void renewLeases() {
    try {
      long now = System.nanoTime();
      Map<String, List<String>> due = new java.util.HashMap<>();
      Map<String, NodeInfo> byId = new java.util.HashMap<>();
      for (Flight f : active.values()) {
        NodeClients.Reserved r = f.reserved;
        NodeInfo d = f.decodeNode;
        if (r == null
            || d == null
            || f.finished
            || r.leaseMillis() <= 0
            || now - f.lastRenewNanos < r.leaseMillis() * 1_000_000L / 3) {
          continue;
        }
        f.lastRenewNanos = now;
        due.computeIfAbsent(d.id(), k -> new ArrayList<>()).add(r.transferId());
        byId.put(d.id(), d);
      }
      for (Map.Entry<String, List<String>> e : due.entrySet()) {
        clients
            .renewLeases(byId.get(e.getKey()), e.getValue())
            .whenComplete(
                (unknown, err) -> {
                  if (err != null) {
                    LOG.warn(
                        "renewing {} KV leases on decode node {} failed: {}",
                        e.getValue().size(),
                        e.getKey(),
                        err.toString());
                  } else if (!unknown.isEmpty()) {
                    LOG.debug(
                        "decode node {} no longer holds reservations {}", e.getKey(), unknown);
                  }
                });
      }
    } catch (RuntimeException e) {
      LOG.warn("lease renewal round failed", e);
    }
  }

  @Override
  public void close() {
    closed = true;
    leaseRenewer.shutdownNow();
    for (Flight f : List.copyOf(active.values())) {
      try (CloseableThreadContext.Instance ctx = logContext(f)) {
        f.stopWork("router is shutting down");
        fail(
            f,
            RouterMetrics.REJECT_SHUTTING_DOWN,
            ServingException.unavailable("router is shutting down"));
      }
    }
  }
}
