package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * What every receive path of {@link KvTransferServer} shares: the transfers a decode node expects,
 * and the rules a pushed row must follow. Errors are {@link KvTransferException}s with the status
 * the sender gets.
 */
final class KvReceiver {
  private static final int FINISHED_REMEMBERED = 4096;

  private final KvBlockPool pool;
  private final KvLayout layout;
  private final Map<String, IncomingTransfer> active = new ConcurrentHashMap<>();
  private final Map<String, IncomingTransfer.State> finished =
      new LinkedHashMap<>(16, 0.75f, false) {
        private static final long serialVersionUID = 1L;

        @Override
        protected boolean removeEldestEntry(Map.Entry<String, IncomingTransfer.State> eldest) {
          return size() > FINISHED_REMEMBERED;
        }
      };
  private boolean closed;

  private final Executor callbacks;

  KvReceiver(KvBlockPool pool, Executor callbacks) {
    this.pool = pool;
    this.callbacks = callbacks;
    this.layout = pool.layout();
  }

  KvBlockPool pool() {
    return pool;
  }

  KvLayout layout() {
    return layout;
  }

  IncomingTransfer expect(String transferId, int[] blocks, int tokens) {
    if (transferId == null || transferId.isEmpty()) {
      throw new IllegalArgumentException("transfer id must not be empty");
    }
    if (tokens < 1) {
      throw new IllegalArgumentException(
          "transfer '" + transferId + "' must carry >= 1 token, got " + tokens);
    }
    int needed = layout.blocksFor(tokens);
    if (blocks.length < needed) {
      throw new IllegalArgumentException(
          "transfer '"
              + transferId
              + "' of "
              + tokens
              + " tokens needs "
              + needed
              + " blocks, got "
              + blocks.length);
    }
    BitSet seen = new BitSet();
    for (int b : Arrays.copyOf(blocks, needed)) {
      if (!pool.isAllocated(b) || seen.get(b)) {
        throw new IllegalArgumentException(
            "transfer '"
                + transferId
                + "': block "
                + b
                + " is not an allocated block of this pool, or is listed twice");
      }
      seen.set(b);
    }
    IncomingTransfer t =
        new IncomingTransfer(transferId, pool, Arrays.copyOf(blocks, needed), tokens, callbacks);
    synchronized (finished) {
      if (closed) {
        throw new IllegalStateException("KV transfer server is closed");
      }
      if (finished.containsKey(transferId) || active.putIfAbsent(transferId, t) != null) {
        throw new IllegalStateException("transfer id '" + transferId + "' is already in use");
      }
    }
    t.completion().whenComplete((ok, err) -> retire(t));
    return t;
  }

  boolean cancel(String transferId) {
    IncomingTransfer t = active.get(transferId);
    return t != null && t.cancel();
  }

  int pending() {
    return active.size();
  }

  /** Fails every pending transfer; no new ones are accepted. */
  void closeAll() {
    synchronized (finished) {
      closed = true;
    }
    for (IncomingTransfer t : active.values()) {
      t.fail(
          new KvTransferException(
              FlightStatusCode.UNAVAILABLE,
              "KV transfer '" + t.id() + "': the decode node's transfer server closed"));
    }
  }

  private void retire(IncomingTransfer t) {
    synchronized (finished) {
      active.remove(t.id(), t);
      finished.put(t.id(), t.state());
    }
  }

  /**
   * The open transfer a push names, or null when it already completed (the push is then
   * acknowledged and nothing is written: its blocks may belong to a running sequence by now).
   */
  IncomingTransfer lookup(String id) {
    if (id == null) {
      throw new KvTransferException(
          FlightStatusCode.INVALID_ARGUMENT,
          "a KV push's descriptor must be a command holding the transfer id");
    }
    IncomingTransfer t = active.get(id);
    if (t != null) {
      return t;
    }
    IncomingTransfer.State was;
    synchronized (finished) {
      was = finished.get(id);
    }
    if (was == IncomingTransfer.State.COMPLETE) {
      return null;
    }
    if (was == IncomingTransfer.State.CANCELLED) {
      throw cancelled(id);
    }
    if (was == IncomingTransfer.State.FAILED) {
      throw alreadyFailed(id);
    }
    throw new KvTransferException(
        FlightStatusCode.NOT_FOUND,
        "no KV transfer '"
            + id
            + "' is expected on this node (never registered, or its decode request is gone)");
  }

  void checkSchema(IncomingTransfer t, Schema schema) {
    String bad = KvWire.mismatch(schema, layout);
    if (bad != null) {
      throw fail(t, bad);
    }
  }

  void checkRow(IncomingTransfer t, int layer, int block, int tokens) {
    if (layer < 0 || layer >= layout.layers()) {
      throw fail(t, "layer " + layer + " is outside 0.." + (layout.layers() - 1));
    }
    if (block < 0 || block >= t.blockCount()) {
      throw fail(
          t,
          "block "
              + block
              + " is outside the transfer's 0.."
              + (t.blockCount() - 1)
              + " ("
              + t.tokens()
              + " tokens)");
    }
    if (tokens < 1 || tokens > t.expectedTokens(block)) {
      throw fail(
          t,
          "block "
              + block
              + " holds "
              + t.expectedTokens(block)
              + " of the transfer's "
              + t.tokens()
              + " tokens, a row claims "
              + tokens);
    }
  }

  /** Throws for a row the transfer refused because it is over. */
  void checkOutcome(IncomingTransfer t, IncomingTransfer.Outcome o) {
    if (o == IncomingTransfer.Outcome.CANCELLED) {
      throw cancelled(t.id());
    }
    if (o == IncomingTransfer.Outcome.FAILED) {
      throw alreadyFailed(t.id());
    }
  }

  /** Fails {@code t} with INVALID_ARGUMENT: the sender's batches do not fit it. */
  KvTransferException fail(IncomingTransfer t, String why) {
    KvTransferException e =
        new KvTransferException(
            FlightStatusCode.INVALID_ARGUMENT, "KV transfer '" + t.id() + "': " + why);
    t.fail(e);
    return e;
  }

  /** The acknowledgement a push gets: layers the receiver holds (all, for a completed transfer). */
  byte[] ack(IncomingTransfer t) {
    return KvWire.ack(t == null ? layout.layers() : t.layersReceived(), layout.layers());
  }

  private static KvTransferException cancelled(String id) {
    return new KvTransferException(
        FlightStatusCode.CANCELLED, "KV transfer '" + id + "' was cancelled by the decode node");
  }

  private static KvTransferException alreadyFailed(String id) {
    return new KvTransferException(
        FlightStatusCode.INVALID_ARGUMENT,
        "KV transfer '" + id + "' already failed on the decode node");
  }
}
