package dev.pdserve.core.cluster;

/** A listener registration; closing it unsubscribes (idempotent, throws nothing). */
@FunctionalInterface
public interface Subscription extends AutoCloseable {
  @Override
  void close();
}
