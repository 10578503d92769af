package dev.pdserve.core.kv;

/**
 * One KV push in progress: send each layer's positions as soon as they exist, then {@link
 * #complete()} waits for the receiver to acknowledge every layer. {@link #close()} releases
 * everything exactly once and cancels the push if it did not complete; once it returns, nothing
 * reads the sequence's blocks any more.
 */
public interface KvPush extends AutoCloseable {
  /** The transfer's id. */
  String id();

  /**
   * Queues positions {@code [fromPosition, toPosition)} of {@code layer} of {@code kv}. The
   * sequence must keep its blocks until {@link #complete()} or {@link #close()} returns (they may
   * be sent without a copy).
   */
  void sendLayer(int layer, PagedSequenceKv kv, int fromPosition, int toPosition);

  /**
   * Ends the push and waits until the receiver holds every layer.
   *
   * @throws RuntimeException with the receiver's reason if it failed
   */
  void complete();

  /** KV bytes queued so far. */
  long bytesSent();

  /** {@link System#nanoTime()} when the first layer was queued; 0 if none yet. */
  long firstSendNanos();

  @Override
  void close();
}
