package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.router.NodeClients.Call;
import dev.pdserve.router.NodeClients.Reserved;
import java.util.EnumSet;
import java.util.Set;
import org.apache.logging.log4j.CloseableThreadContext;

/**
 * A request the router took and has not ended: its {@link RequestState} and what it holds in that
 * state (a reservation, the open prefill or decode call). The transitions are the methods below,
 * each made under this request's lock by its one owner (see {@link RequestState}); a transition
 * that finds the request {@link RequestState#FINISHED} returns false and its caller undoes what it
 * started. {@link #cancel} is the handle the adapters hold.
 */
public final class InFlightRequest {
  private static final Set<RequestState> HOLDING_RESERVATION =
      EnumSet.of(RequestState.PREFILLING, RequestState.DECODING, RequestState.MIGRATING);

  private final PreparedRequest prepared;
  private final ResponseSink sink;
  private final String nodeId;
  private final RequestOutcomes outcomes;
  private final DeliveredTokens delivered = new DeliveredTokens();

  // guarded by this
  private RequestState state = RequestState.QUEUED;
  private NodeInfo decodeNode;
  private Reserved reservation;
  private long lastRenewNanos;
  private Call prefillCall;
  private Call decodeCall;
  private boolean started;
  private long startedNanos;
  private boolean anyToken;
  private long firstTokenNanos;
  private long lastTokenNanos;

  InFlightRequest(
      PreparedRequest prepared, ResponseSink sink, String nodeId, RequestOutcomes outcomes) {
    this.prepared = prepared;
    this.sink = sink;
    this.nodeId = nodeId;
    this.outcomes = outcomes;
  }

  public String requestId() {
    return prepared.request().requestId();
  }

  public synchronized RequestState state() {
    return state;
  }

  /**
   * Cancels the request (the client went away or its deadline passed): its work on the nodes stops,
   * its KV is freed, and no more output is sent.
   */
  public void cancel(String why) {
    outcomes.cancel(this, why);
  }

  GenerateRequest request() {
    return prepared.request();
  }

  PreparedRequest prepared() {
    return prepared;
  }

  int[] prompt() {
    return prepared.prompt();
  }

  ResponseSink sink() {
    return sink;
  }

  long deadlineNanos() {
    return prepared.deadlineNanos();
  }

  /** What the client received, over every decode stream the request had. */
  DeliveredTokens delivered() {
    return delivered;
  }

  /** Puts the request's id and the router's node id into the log context of this thread. */
  CloseableThreadContext.Instance logContext() {
    return LogContext.request(nodeId, requestId());
  }

  synchronized boolean isFinished() {
    return state == RequestState.FINISHED;
  }

  /** The decode node holding the request's current reservation (null before one is granted). */
  synchronized NodeInfo decodeNode() {
    return decodeNode;
  }

  synchronized Reserved reservation() {
    return reservation;
  }

  /** QUEUED → RESERVING: the request got a running slot at {@code now}. */
  synchronized boolean startReserving(long now) {
    if (!move(RequestState.RESERVING, RequestState.QUEUED)) {
      return false;
    }
    started = true;
    startedNanos = now;
    return true;
  }

  /** RESERVING → PREFILLING: {@code decode} granted reservation {@code r} at {@code now}. */
  synchronized boolean reservationGranted(NodeInfo decode, Reserved r, long now) {
    if (!move(RequestState.PREFILLING, RequestState.RESERVING)) {
      return false;
    }
    decodeNode = decode;
    reservation = r;
    lastRenewNanos = now;
    return true;
  }

  /** The prefill attempt's call opened (PREFILLING); false: the request ended, cancel it. */
  synchronized boolean prefillCallOpened(Call call) {
    if (state != RequestState.PREFILLING) {
      return false;
    }
    prefillCall = call;
    return true;
  }

  synchronized void prefillCallEnded() {
    prefillCall = null;
  }

  /** PREFILLING or MIGRATING → DECODING: the decode stream about to open owns the reservation. */
  synchronized boolean startDecoding() {
    return move(RequestState.DECODING, RequestState.PREFILLING, RequestState.MIGRATING);
  }

  /** The decode stream's call opened (DECODING); false: the request ended, cancel it. */
  synchronized boolean decodeCallOpened(Call call) {
    if (state != RequestState.DECODING) {
      return false;
    }
    decodeCall = call;
    return true;
  }

  /** The decode stream ended (completion, error or migration): nothing left to cancel on it. */
  synchronized void decodeStreamEnded() {
    decodeCall = null;
  }

  /** The open decode call, taken (the caller cancels it: its stream was given up); or null. */
  synchronized Call takeDecodeCall() {
    Call c = decodeCall;
    decodeCall = null;
    return c;
  }

  /**
   * DECODING → RESERVING: the decode node was lost (its stream broke or went silent); the request
   * continues elsewhere from the tokens delivered. It holds no reservation until a new one is
   * granted (the lost node frees the old one: its stream was cancelled, or its lease runs out).
   */
  synchronized boolean restartAfterDecodeLoss() {
    if (!move(RequestState.RESERVING, RequestState.DECODING)) {
      return false;
    }
    decodeNode = null;
    reservation = null;
    decodeCall = null;
    return true;
  }

  /**
   * PREFILLING → RESERVING: the prefill failed; the KV is computed again into a fresh reservation.
   * Returns the reservation held, for the caller to release (its transfer is cancelled, so nothing
   * the failed prefill still pushes is written); null if the request had finished.
   */
  synchronized Held restartAfterPrefillLoss() {
    if (!move(RequestState.RESERVING, RequestState.PREFILLING)) {
      return null;
    }
    Held held = new Held(null, null, decodeNode, reservation);
    decodeNode = null;
    reservation = null;
    return held;
  }

  /**
   * DECODING → MIGRATING: the sequence moved to {@code target}, whose reservation {@code r} the
   * router now holds. The draining node reserved it some time before {@code now} (before it pushed
   * the KV and told the router), so its lease is due for renewal at once.
   */
  synchronized boolean migrating(NodeInfo target, Reserved r, long now) {
    if (!move(RequestState.MIGRATING, RequestState.DECODING)) {
      return false;
    }
    decodeNode = target;
    reservation = r;
    lastRenewNanos = now - r.leaseMillis() * 1_000_000L;
    return true;
  }

  /**
   * Any state → FINISHED, once. Returns what the request held, for the caller to stop; null if it
   * had finished already.
   */
  synchronized Held finish() {
    if (state == RequestState.FINISHED) {
      return null;
    }
    boolean routerHoldsReservation =
        state == RequestState.PREFILLING || state == RequestState.MIGRATING;
    Held held =
        new Held(
            prefillCall,
            decodeCall,
            routerHoldsReservation ? decodeNode : null,
            routerHoldsReservation ? reservation : null);
    state = RequestState.FINISHED;
    prefillCall = null;
    decodeCall = null;
    return held;
  }

  /**
   * The reservation whose lease is due at {@code now} (its last grant or renewal is at least a
   * third of the lease ago), marked renewed; null if none is due.
   */
  synchronized DueLease takeDueLease(long now) {
    if (!HOLDING_RESERVATION.contains(state)
        || reservation == null
        || reservation.leaseMillis() <= 0
        || now - lastRenewNanos < reservation.leaseMillis() * 1_000_000L / 3) {
      return null;
    }
    lastRenewNanos = now;
    return new DueLease(decodeNode, reservation.transferId());
  }

  /**
   * Tokens of a delta reached the router at {@code now}: measures TTFT or inter-token time.
   *
   * @return whether they are the request's first
   */
  synchronized boolean tokensArrived(int n, long now, RouterMetrics metrics) {
    boolean first = !anyToken;
    if (first) {
      anyToken = true;
      firstTokenNanos = now;
      metrics.firstToken(now - prepared.arrivalNanos(), prepared.prompt().length, n);
    } else {
      metrics.nextTokens(now - lastTokenNanos, n);
    }
    lastTokenNanos = now;
    return first;
  }

  /** Measures a completion at {@code now}: queue, prefill, decode and end-to-end times. */
  synchronized void measureCompletion(String finishReason, long now, RouterMetrics metrics) {
    long begun = started ? startedNanos : now;
    metrics.finished(
        finishReason,
        begun - prepared.arrivalNanos(),
        anyToken ? firstTokenNanos - begun : -1,
        anyToken ? lastTokenNanos - firstTokenNanos : -1,
        now - prepared.arrivalNanos());
  }

  private boolean move(RequestState to, RequestState... from) {
    if (state == RequestState.FINISHED) {
      return false;
    }
    for (RequestState s : from) {
      if (state == s) {
        state = to;
        return true;
      }
    }
    throw new IllegalStateException(
        "request " + requestId() + " cannot go from " + state + " to " + to);
  }

  @Override
  public String toString() {
    return "request " + requestId() + " (" + state() + ")";
  }

  /**
   * What a request held when it finished: calls to cancel, and a reservation the router (not a
   * decode stream) held, to release.
   */
  record Held(Call prefillCall, Call decodeCall, NodeInfo reservedOn, Reserved reservation) {
    void stop(NodeClients clients, String why) {
      if (prefillCall != null) {
        prefillCall.cancel(why);
      }
      if (decodeCall != null) {
        decodeCall.cancel(why);
      }
      if (reservation != null && reservedOn != null) {
        clients.release(reservedOn, reservation.transferId());
      }
    }
  }

  /** A reservation whose lease is to be renewed on {@code node}. */
  record DueLease(NodeInfo node, String transferId) {}
}
