package dev.pdserve.core.kv;

import java.util.concurrent.CompletableFuture;

/** A KV transfer a node expects ({@link KvIntake#expect}): progress and completion. */
public interface ExpectedKv {
  /** The transfer's id. */
  String id();

  /**
   * Completes when every layer of every position has arrived (never on a transport thread); fails
   * with a {@link java.util.concurrent.CancellationException} after {@link KvIntake#cancel}, or
   * with the sender's or receiver's error.
   */
  CompletableFuture<? extends ExpectedKv> completion();

  /** Layers whose every position has arrived. */
  int layersReceived();

  /** KV bytes stored so far. */
  long bytesReceived();

  /** Nanoseconds from the first row stored to the last; 0 until complete. */
  long receiveNanos();
}
