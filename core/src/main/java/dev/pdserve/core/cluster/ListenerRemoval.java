package dev.pdserve.core.cluster;

import com.hazelcast.core.HazelcastInstanceNotActiveException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Removes a Hazelcast entry listener without letting a node's shutdown wait on it. Removal is a
 * cluster-wide operation; when other members are leaving at the same moment (a whole cluster
 * stopping, a rolling restart), Hazelcast retries it until its invocation timeout (120 s). A node
 * that is closing gives it {@link #WAIT} and moves on: the removal goes on in the background and
 * ends when it succeeds or the member shuts down (which drops its listeners anyway).
 */
final class ListenerRemoval {
  static final Duration WAIT = Duration.ofSeconds(2);
  private static final Logger LOG = LogManager.getLogger(ListenerRemoval.class);

  private ListenerRemoval() {}

  /** Runs {@code removal}, waiting at most {@link #WAIT} for it. */
  static void bounded(String what, Runnable removal) {
    CompletableFuture<Void> f =
        CompletableFuture.runAsync(
            () -> {
              try {
                removal.run();
              } catch (HazelcastInstanceNotActiveException ignored) {
                // the member is gone, and its listeners with it
              }
            },
            r -> {
              Thread t = new Thread(r, "hz-listener-removal");
              t.setDaemon(true);
              t.start();
            });
    try {
      f.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      LOG.debug("removing {} takes longer than {}; not waiting for it", what, WAIT);
    } catch (ExecutionException e) {
      LOG.debug("removing {} failed: {}", what, e.getCause().toString());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
