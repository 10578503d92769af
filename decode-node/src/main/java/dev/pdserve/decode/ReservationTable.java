package dev.pdserve.decode;

import com.google.common.base.Ticker;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvIntake;
import dev.pdserve.core.kv.KvPoolExhaustedException;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode node's ledger of KV reservations, by transfer id: reserve (blocks from the pool, the
 * transfer the prefill node pushes into registered with the {@link KvIntake}), release, the
 * bookkeeping of a join, lease renewal, and {@link #sweep()}, which frees what time has run out on.
 * Every reservation ends {@link #free freed}, exactly once.
 *
 * <p>Time is the {@link Ticker}'s: a reservation's lease ({@link DecodeOptions#lease()}), its time
 * to live until a request joins it ({@link DecodeOptions#reservationTtl()}) and a joined request's
 * wait for its KV ({@link DecodeOptions#transferTimeout()}) are decided by {@link #sweep()} against
 * it.
 */
final class ReservationTable {
  private static final Logger LOG = LogManager.getLogger(ReservationTable.class);

  private final KvBlockPool pool;
  private final KvIntake intake;
  private final DecodeOptions options;
  private final Ticker ticker;
  private final String nodeId;

  /** Reservations by transfer id, from reserve until freed. */
  private final Map<String, DecodeSequence> byTransfer = new ConcurrentHashMap<>();

  /** Request id → transfer id of a joined request (for cancel by request id). */
  private final Map<String, String> byRequest = new ConcurrentHashMap<>();

  /** KV blocks held by reservations (reserved, waiting for KV, or running). */
  private final AtomicInteger reservedBlocks = new AtomicInteger();

  private final AtomicLong leasesExpired = new AtomicLong();
  private final AtomicLong sequencesEnded = new AtomicLong();

  /** False while the node drains (or serves the other role): new reservations are refused. */
  private volatile boolean accepting = true;

  private volatile boolean closed;

  /** Why the decode loop died (what reserves and joins are refused with), or null. */
  private volatile String loopDeath;

  ReservationTable(
      KvBlockPool pool, KvIntake intake, DecodeOptions options, Ticker ticker, String nodeId) {
    this.pool = pool;
    this.intake = intake;
    this.options = options;
    this.ticker = ticker;
    this.nodeId = nodeId;
  }

  /**
   * Sets aside KV for a prompt of {@code promptTokens} and up to {@code maxTokens} generated
   * tokens, and registers the transfer that will push into it.
   *
   * @throws ServingException UNAVAILABLE when closed or not accepting, INVALID_ARGUMENT for bad
   *     sizes, RESOURCE_EXHAUSTED when the pool has not enough free blocks
   */
  Reservation reserve(String requestId, int promptTokens, int maxTokens) {
    if (loopDeath != null) {
      throw ServingException.unavailable(loopDeath + "; choose another decode node");
    }
    if (closed) {
      throw ServingException.unavailable("decode node is shutting down");
    }
    if (!accepting) {
      throw ServingException.unavailable(
          "this node is not taking decode work (draining or serving the prefill role); choose another decode node");
    }
    if (promptTokens < 1 || maxTokens < 1) {
      throw ServingException.invalid(
          "reserve needs prompt_tokens >= 1 and max_tokens >= 1, got "
              + promptTokens
              + " and "
              + maxTokens);
    }
    int needed = pool.layout().blocksFor(promptTokens + maxTokens);
    if (needed > pool.totalBlocks()) {
      throw ServingException.exhausted(
          "request needs "
              + needed
              + " KV blocks ("
              + (promptTokens + maxTokens)
              + " tokens) but this decode node's pool holds only "
              + pool.totalBlocks()
              + "; lower max_tokens or shorten the prompt");
    }
    int[] blocks;
    try {
      blocks = pool.allocate(needed);
    } catch (KvPoolExhaustedException e) {
      throw ServingException.exhausted(
          "decode KV pool is full ("
              + e.free()
              + " of "
              + pool.totalBlocks()
              + " blocks free, "
              + needed
              + " needed); retry shortly");
    }
    String transferId = requestId + "/" + UUID.randomUUID().toString().substring(0, 8);
    Reservation r = new Reservation(transferId, requestId, blocks, promptTokens, maxTokens);
    long now = ticker.read();
    DecodeSequence s = new DecodeSequence(r, now, now + options.lease().toNanos());
    reservedBlocks.addAndGet(s.blockCount());
    byTransfer.put(transferId, s);
    try {
      s.expectedKv = intake.expect(transferId, blocks, promptTokens);
    } catch (RuntimeException e) {
      free(s);
      throw e;
    }
    try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
      LOG.debug(
          "reserved {} KV blocks for request {} ({} prompt + {} max tokens), transfer {}",
          blocks.length,
          requestId,
          promptTokens,
          maxTokens,
          transferId);
    }
    return r;
  }

  /** Frees a reservation that no request will use; false if it is unknown or already joined. */
  boolean release(String transferId) {
    DecodeSequence s = byTransfer.get(transferId);
    if (s == null || s.joined()) {
      return false;
    }
    free(s);
    return true;
  }

  /**
   * Records that {@code req} joins its reservation, streaming to {@code sink}; {@code generatedIds}
   * are the tokens it generated on another decode node when it migrated here, else null. The join's
   * KV wait starts now.
   *
   * @throws ServingException NOT_FOUND for an unknown or freed reservation, INVALID_ARGUMENT when
   *     it belongs to another request or holds another number of KV positions, ALREADY_EXISTS when
   *     the request joined before
   */
  DecodeSequence join(JoinRequest req, int[] generatedIds, TokenSink sink) {
    if (loopDeath != null) {
      throw ServingException.unavailable(
          loopDeath
              + "; request "
              + req.requestId()
              + " cannot decode here (its reservation was freed); continuing it on another"
              + " decode node is safe");
    }
    DecodeSequence s = byTransfer.get(req.transferId());
    if (s == null) {
      throw ServingException.notFound(
          "no KV reservation " + req.transferId() + " on this decode node (expired or released)");
    }
    if (!s.requestId().equals(req.requestId())) {
      throw ServingException.invalid(
          "reservation " + req.transferId() + " belongs to request " + s.requestId());
    }
    int kvTokens = req.promptIds().length + (generatedIds == null ? 0 : generatedIds.length - 1);
    if (kvTokens != s.reservation.promptTokens()) {
      throw ServingException.invalid(
          "request "
              + req.requestId()
              + " has "
              + kvTokens
              + " KV positions (prompt "
              + req.promptIds().length
              + (generatedIds == null ? "" : " + " + (generatedIds.length - 1) + " generated")
              + "); its reservation is for "
              + s.reservation.promptTokens());
    }
    synchronized (s) {
      if (s.join != null) {
        throw new ServingException(
            ServingException.Kind.ALREADY_EXISTS, "request " + req.requestId() + " already joined");
      }
      if (s.freed) {
        throw ServingException.notFound("reservation " + req.transferId() + " was freed");
      }
      s.joinedAtNanos = ticker.read();
      s.join = req;
      s.sink = sink;
      s.resumed = generatedIds;
    }
    byRequest.put(req.requestId(), req.transferId());
    return s;
  }

  /** The joined request {@code requestId}, while its reservation is held. */
  Optional<DecodeSequence> joined(String requestId) {
    String transferId = byRequest.get(requestId);
    return transferId == null ? Optional.empty() : Optional.ofNullable(byTransfer.get(transferId));
  }

  /**
   * Marks a sequence cancelled (the decode loop ends it within a step) and cancels its transfer, so
   * one still waiting for its KV fails now.
   */
  void cancel(DecodeSequence s) {
    s.cancelled = true;
    intake.cancel(s.transferId());
  }

  /** Stops its KV transfer: nothing will be pushed (the decode node prefills it itself). */
  void cancelTransfer(DecodeSequence s) {
    intake.cancel(s.transferId());
  }

  /**
   * Extends the leases of these reservations (and of the requests decoding in them) by one lease
   * from now. Returns the ids this node does not hold: finished, released or expired.
   */
  List<String> renewLeases(Collection<String> transferIds) {
    long until = ticker.read() + options.lease().toNanos();
    List<String> unknown = new ArrayList<>();
    for (String id : transferIds) {
      DecodeSequence s = byTransfer.get(id);
      if (s == null) {
        unknown.add(id);
      } else {
        s.leaseDeadlineNanos = until;
      }
    }
    return unknown;
  }

  /**
   * Frees reservations whose lease ran out (a joined request is cancelled: it stops within a step
   * and its KV is freed), those no request joined within their time to live, and fails joined
   * requests whose KV did not arrive within the transfer timeout (their transfer is cancelled, and
   * {@link DecodeSequence#kvLate} says why).
   *
   * @return whether it cancelled a joined request (the decode loop should look at its batch)
   */
  synchronized boolean sweep() {
    long ttl = options.reservationTtl().toNanos();
    long transferTimeout = options.transferTimeout().toNanos();
    long now = ticker.read();
    boolean cancelledJoined = false;
    for (DecodeSequence s : byTransfer.values()) {
      if (now - s.leaseDeadlineNanos > 0 && !s.cancelled) {
        leasesExpired.incrementAndGet();
        LOG.warn(
            "lease of reservation {} (request {}) ran out after {} without a renewal: its router or prefill node is gone; freeing its KV",
            s.transferId(),
            s.requestId(),
            options.lease());
        if (s.joined()) {
          cancel(s);
          cancelledJoined = true;
        } else {
          free(s);
        }
        continue;
      }
      JoinRequest j = s.join;
      if (j == null) {
        if (now - s.reservedAtNanos > ttl) {
          LOG.warn(
              "freeing reservation {} of request {}: not joined within {}",
              s.transferId(),
              s.requestId(),
              options.reservationTtl());
          free(s);
        }
      } else if (!j.localPrefill()
          && !s.kvArrived
          && !s.kvLate
          && now - s.joinedAtNanos > transferTimeout) {
        s.kvLate = true;
        intake.cancel(s.transferId()); // its KV wait fails with DEADLINE_EXCEEDED
      }
    }
    return cancelledJoined;
  }

  /**
   * Frees a reservation's blocks exactly once (cancelling its transfer first, so nothing writes
   * into them).
   */
  void free(DecodeSequence s) {
    synchronized (s) {
      if (s.freed) {
        return;
      }
      s.freed = true;
      intake.cancel(s.transferId());
      byTransfer.remove(s.transferId()); // first, so the reserved-blocks gauge never lags the pool
      reservedBlocks.addAndGet(-s.blockCount());
      if (s.join != null) {
        byRequest.remove(s.join.requestId(), s.transferId());
        if (!s.migrated) {
          sequencesEnded.incrementAndGet();
        }
      }
      if (s.kv != null) {
        s.kv.release();
      } else {
        pool.free(s.reservation.blocks());
      }
    }
  }

  /** Lets the table take new reservations (true) or refuse them with UNAVAILABLE (false). */
  void setAccepting(boolean accepting) {
    this.accepting = accepting;
  }

  boolean accepting() {
    return accepting;
  }

  /** Refuses every reservation from now on ("decode node is shutting down"). */
  void close() {
    closed = true;
  }

  /**
   * The decode loop died: every reservation and join is refused from now on with UNAVAILABLE
   * starting with {@code why}.
   */
  void loopDied(String why) {
    loopDeath = why;
    accepting = false;
  }

  /** What a request this node held fails with once the decode loop died; null while it runs. */
  ServingException loopDeadError(String requestId) {
    String why = loopDeath;
    return why == null
        ? null
        : ServingException.unavailable(
            why
                + "; nothing of request "
                + requestId
                + " runs here any more, so continuing or retrying it on another decode node is"
                + " safe; this node must be restarted");
  }

  /** Frees every reservation held; returns them. */
  List<DecodeSequence> freeAll() {
    List<DecodeSequence> freed = new ArrayList<>(byTransfer.values());
    for (DecodeSequence s : freed) {
      free(s);
    }
    return freed;
  }

  /** Reservations held (reserved, waiting for their KV, or running). */
  int size() {
    return byTransfer.size();
  }

  boolean isEmpty() {
    return byTransfer.isEmpty();
  }

  /** Joined requests whose KV is not in the batch yet. */
  int waitingForKv() {
    int waiting = 0;
    for (DecodeSequence s : byTransfer.values()) {
      if (s.waitingForKv()) {
        waiting++;
      }
    }
    return waiting;
  }

  /** KV blocks held by reservations (reserved, waiting for their KV, or running). */
  int reservedBlocks() {
    return reservedBlocks.get();
  }

  /** Reservations freed because their lease ran out. */
  long leasesExpired() {
    return leasesExpired.get();
  }

  /**
   * Joined requests whose reservation was freed on this node (finished, cancelled, failed), not
   * counting those that migrated away.
   */
  long sequencesEnded() {
    return sequencesEnded.get();
  }
}
