package dev.pdserve.router;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.ImageSpan;
import dev.pdserve.model.engine.RenderedPrompt;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.PromptImage;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The request lifecycle: validate and tokenize, admit (bounded), reserve KV on a decode node,
 * prefill on a prefill node (which pushes the KV to the decode node over Flight), then stream the
 * decode node's tokens to the caller. Cancellation (client cancel, deadline, Abort) stops the work
 * on both nodes and frees the request's KV. Every accepted request ends with exactly one completion
 * or one error.
 *
 * <p>A façade over the parts that do the work: {@link Admission} (the bounded running and queued
 * slots), {@link RequestRunner} (reservation and prefill), {@link DecodeStreamFollower} (the decode
 * stream, through migrations), {@link RequestOutcomes} (each request's one end) and {@link
 * LeaseRenewer}; each request is an {@link InFlightRequest} moving through {@link RequestState}s.
 *
 * <p>With {@link PrefixRouting}: the router hashes each prompt's blocks as the prefill nodes'
 * prefix caches do and prefers the prefill node likely to hold the longest prefix, weighed against
 * its queue ({@link PrefixIndex}); prompts short enough are prefilled by the decode node itself
 * (conditional disaggregation). While a request holds a KV reservation the router renews its lease
 * every lease/3, so a decode node frees the KV of a router that vanished.
 *
 * <p>When a node fails under a request ({@link FailureHandling}): a prefill is computed again
 * elsewhere, and a request whose decode node died or went silent ({@link StreamWatchdog}) continues
 * on another decode node from the tokens already sent, each token still sent once. Under overload
 * ({@link OverloadGuard}) a request predicted to wait too long for the prompts ahead of it is
 * refused at once with RESOURCE_EXHAUSTED and a retry hint, so the admitted keep their latency.
 *
 * <p>Measured through {@link RouterMetrics} (timings per request, tokens, outcomes by reason). Log
 * lines of a request carry its id and the router's node id (the one in the log context the router
 * was built under) whichever thread runs the callback. Time (deadlines, the queue-deadline check,
 * leases, stream silence, the overload forecast, the idle wait) is read from the settings' {@link
 * Ticker}.
 */
public final class Router implements AutoCloseable {
  private static final SecureRandom SEEDS = new SecureRandom();

  private final RouterSettings settings;
  private final String nodeId = LogContext.nodeId();
  private final PrefixIndex prefixIndex; // null: prefix-aware routing off
  private final Map<String, InFlightRequest> active = new ConcurrentHashMap<>();
  private final Object idle = new Object(); // notified whenever a request ends
  private final RequestOutcomes outcomes;
  private final DecodeStreamFollower follower;
  private final RequestRunner runner;
  private final Admission admission;
  private final LeaseRenewer leases;
  private final StreamWatchdog watchdog;
  private final OverloadGuard overload;
  private volatile boolean closed;
  private volatile String refusal; // set when the router drains: new requests get UNAVAILABLE

  public Router(RouterSettings settings) {
    this.settings = settings;
    PrefixRouting prefix = settings.prefixRouting();
    this.prefixIndex =
        prefix.hasher() == null
            ? null
            : new PrefixIndex(prefix.hasher().blockSize(), prefix.trackedBlocksPerNode());
    NodeSelector selector = NodeSelector.withThreadLocalRandom();
    this.outcomes =
        new RequestOutcomes(settings.clients(), settings.metrics(), settings.ticker(), this::ended);
    this.overload =
        new OverloadGuard(settings.overload(), settings.nodes(), selector, settings.ticker());
    // the follower hands requests that lost their decode node back to the runner
    this.follower =
        new DecodeStreamFollower(settings, selector, outcomes, overload, f -> runner().restart(f));
    this.runner = new RequestRunner(settings, selector, prefixIndex, follower, outcomes);
    this.admission = new Admission(settings.options(), runner::start);
    this.leases =
        new LeaseRenewer(
            settings.clients(), active::values, settings.ticker(), settings.roundPeriod());
    this.watchdog =
        new StreamWatchdog(
            active::values,
            follower,
            settings.ticker(),
            settings.failures().streamSilenceTimeout(),
            settings.roundPeriod());
  }

  private RequestRunner runner() {
    return runner;
  }

  /**
   * Starts a request. Validation and admission errors are thrown (INVALID_ARGUMENT, ALREADY_EXISTS,
   * RESOURCE_EXHAUSTED, UNAVAILABLE); once it returns, every outcome goes to the sink exactly once.
   *
   * @param deadlineNanos absolute deadline on {@link #ticker()}, or 0 for none
   */
  public InFlightRequest submit(GenerateRequest req, ResponseSink sink, long deadlineNanos) {
    if (closed) {
      throw refuse(
          RouterMetrics.REJECT_SHUTTING_DOWN,
          ServingException.unavailable("router is shutting down"));
    }
    String refusing = refusal;
    if (refusing != null) {
      throw refuse(RouterMetrics.REJECT_SHUTTING_DOWN, ServingException.unavailable(refusing));
    }
    PreparedRequest prepared = prepare(req, deadlineNanos);
    requireActive(NodeRole.PREFILL, RouterMetrics.REJECT_NO_PREFILL_NODE);
    requireActive(NodeRole.DECODE, RouterMetrics.REJECT_NO_DECODE_NODE);
    InFlightRequest f = new InFlightRequest(prepared, sink, nodeId, outcomes);
    try {
      overload.admit(f); // decided and taken in one step, before anything else is kept
    } catch (ServingException e) {
      throw refuse(RouterMetrics.REJECT_OVERLOADED, e);
    }
    if (active.putIfAbsent(req.requestId(), f) != null) {
      overload.ended(f);
      throw refuse(
          "already_exists",
          new ServingException(
              ServingException.Kind.ALREADY_EXISTS,
              "request id " + req.requestId() + " is already in flight; use a unique request_id"));
    }
    boolean startNow;
    try {
      startNow = admission.admit(f);
    } catch (ServingException e) {
      overload.ended(f);
      active.remove(req.requestId(), f);
      throw refuse(RouterMetrics.REJECT_QUEUE_FULL, e);
    }
    if (startNow) {
      runner.start(f);
    }
    return f;
  }

  /** Validates and tokenizes {@code req} and decides its seed, prefix hashes and local prefill. */
  private PreparedRequest prepare(GenerateRequest req, long deadlineNanos) {
    int[] prompt;
    List<PromptImage> images;
    int positionDelta;
    SamplingParams params = req.sampling();
    ModelConfig model = settings.model();
    try {
      RenderedPrompt rendered =
          settings.renderer().renderWithImages(req.prompt(), req.enableThinking());
      prompt = rendered.ids();
      images = promptImages(req, rendered);
      positionDelta = rendered.hasImages() ? rendered.positions().delta() : 0;
      params.validate(prompt.length, model.maxPositions(), model.vocabSize());
    } catch (InvalidRequestException e) {
      throw refuse(RouterMetrics.REJECT_INVALID_ARGUMENT, ServingException.invalid(e.getMessage()));
    } catch (IllegalArgumentException e) {
      throw refuse(
          RouterMetrics.REJECT_INVALID_ARGUMENT,
          ServingException.invalid(String.valueOf(e.getMessage())));
    }
    PrefixRouting prefix = settings.prefixRouting();
    boolean localPrefill =
        prefix.localPrefillThreshold() > 0
            && prompt.length <= prefix.localPrefillThreshold()
            && settings.clients().supportsLocalPrefill();
    return new PreparedRequest(
        req,
        prompt,
        images,
        positionDelta,
        prefixIndex == null ? null : prefix.hasher().hashes(prompt, images),
        params.seed().orElseGet(SEEDS::nextLong),
        localPrefill,
        deadlineNanos,
        settings.ticker().read());
  }

  /**
   * The rendered prompt's images as the nodes take them: each image's file, its digest under the
   * model's preprocessing settings (the encoder cache's key and the prefix keys' image part) and
   * where its placeholders are.
   */
  private List<PromptImage> promptImages(GenerateRequest req, RenderedPrompt rendered) {
    if (!rendered.hasImages()) {
      return List.of();
    }
    VisionConfig vision = settings.model().vision().orElseThrow();
    List<EncodedImage> files = req.prompt().images();
    List<PromptImage> out = new ArrayList<>(files.size());
    for (int k = 0; k < files.size(); k++) {
      ImageSpan span = rendered.images().get(k);
      EncodedImage file = files.get(k);
      out.add(
          new PromptImage(
              file,
              mediaTypeOf(file),
              ImageDigest.of(file, vision),
              span.start(),
              span.gridH(),
              span.gridW()));
    }
    return List.copyOf(out);
  }

  /** The type the file's signature says (the nodes' decoder goes by the signature too). */
  private static String mediaTypeOf(EncodedImage file) {
    byte[] b = file.bytes();
    if (b.length > 3 && (b[0] & 0xff) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G') {
      return "image/png";
    }
    if (b.length > 2 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8) {
      return "image/jpeg";
    }
    return "";
  }

  private void requireActive(NodeRole role, String reason) {
    if (settings.nodes().active(role).isEmpty()) {
      String name = role.name().toLowerCase(Locale.ROOT);
      throw refuse(
          reason,
          ServingException.unavailable(
              "no ACTIVE "
                  + name
                  + " node in the cluster ("
                  + name
                  + " nodes: "
                  + settings.nodes().describe(role)
                  + "); retry when one is up"));
    }
  }

  private ServingException refuse(String reason, ServingException e) {
    settings.metrics().rejected(reason);
    return e;
  }

  /** Aborts a request by id: its stream ends with finish_reason "abort". */
  public boolean abort(String requestId) {
    InFlightRequest f = active.get(requestId);
    if (f == null) {
      return false;
    }
    outcomes.abort(f);
    return true;
  }

  /** A request ended (before its outcome is sent): forget it and free its slot. */
  private void ended(InFlightRequest f) {
    active.remove(f.requestId(), f);
    overload.ended(f);
    admission.ended(f);
    synchronized (idle) {
      idle.notifyAll();
    }
  }

  /**
   * Starts draining: every new request is refused with UNAVAILABLE and {@code message} (say what to
   * do, e.g. retry on another replica); requests already taken run on. See {@link #awaitIdle}.
   */
  public void stopAccepting(String message) {
    this.refusal = Objects.requireNonNull(message, "message");
  }

  /** The message new requests are refused with since {@link #stopAccepting}, if draining. */
  public Optional<String> refusal() {
    return Optional.ofNullable(refusal);
  }

  /**
   * Waits until every request taken has ended (running and queued ones), or {@code timeout} passes
   * on {@link #ticker()}.
   *
   * @return whether none is left
   */
  public boolean awaitIdle(Duration timeout) {
    Ticker ticker = settings.ticker();
    long deadline = ticker.read() + timeout.toNanos();
    synchronized (idle) {
      while (!active.isEmpty()) {
        if (ticker.read() - deadline >= 0) {
          return false;
        }
        try {
          idle.wait(10); // woken when a request ends; wakes anyway to read the clock
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return active.isEmpty();
        }
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
    return admission.running();
  }

  public int queued() {
    return admission.queued();
  }

  /** Requests whose prompt the decode node prefilled itself (conditional disaggregation). */
  public long localPrefills() {
    return runner.localPrefills();
  }

  /** Requests sent to a prefill node chosen because it likely held a prefix of the prompt. */
  public long prefixRoutedRequests() {
    return runner.prefixRouted();
  }

  /** Decode streams this router continued on another decode node after a migration. */
  public long migrationsFollowed() {
    return follower.migrationsFollowed();
  }

  /**
   * The router's view of prefill nodes' prefix caches, or null when prefix-aware routing is off.
   */
  public PrefixIndex prefixIndex() {
    return prefixIndex;
  }

  public ModelConfig model() {
    return settings.model();
  }

  public RouterMetrics metrics() {
    return settings.metrics();
  }

  /** The clock of deadlines given to {@link #submit} (nanoseconds). */
  public Ticker ticker() {
    return settings.ticker();
  }

  /** The lease renewer (tests run its rounds). */
  LeaseRenewer leaseRenewer() {
    return leases;
  }

  /** The silent-stream watchdog (tests run its rounds). */
  StreamWatchdog watchdog() {
    return watchdog;
  }

  /** The forecast of the wait a request arriving now would have for the prompts ahead of it. */
  public Duration predictedQueueDelay() {
    return overload.forecast().delay();
  }

  /**
   * How much later than forecast the recent first tokens came (the overload forecast adds it to the
   * queue's wait).
   */
  public Duration forecastLag() {
    return overload.forecast().lag();
  }

  /**
   * The prompt throughput the overload forecast uses now (prompt tokens/s, measured or assumed).
   */
  public double forecastTokensPerSecond() {
    return overload.forecast().tokensPerSecond();
  }

  /**
   * How many requests the overload guard lets wait for their first token at once now (0 without a
   * bound).
   */
  public int admissionWindow() {
    return overload.admissionWindow();
  }

  /** Ends every request still in flight with UNAVAILABLE and stops the router's threads. */
  @Override
  public void close() {
    closed = true;
    watchdog.close();
    leases.close();
    admission.close();
    for (InFlightRequest f : List.copyOf(active.values())) {
      outcomes.fail(
          f,
          RouterMetrics.REJECT_SHUTTING_DOWN,
          ServingException.unavailable("router is shutting down"));
    }
  }
}
