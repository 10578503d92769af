package dev.pdserve.router;

import com.google.common.util.concurrent.ThreadFactoryBuilder;
import dev.pdserve.core.serving.ServingException;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The router's bounded slots: at most {@code maxActive} requests running (reserving, prefilling or
 * decoding) and {@code maxQueued} waiting; beyond that a request is refused with RESOURCE_EXHAUSTED
 * and a retry hint. When a running request ends, the oldest waiting one gets its slot and is
 * started on this class's own thread ({@code router-admission}), never on the thread that ended the
 * other.
 */
final class Admission implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Admission.class);

  private final RouterOptions options;
  private final Consumer<InFlightRequest> starter;
  private final ExecutorService starts;
  private final ArrayDeque<InFlightRequest> queue = new ArrayDeque<>(); // the lock of both
  private final Set<InFlightRequest> running = Collections.newSetFromMap(new IdentityHashMap<>());

  /**
   * @param starter starts a request that got a slot after waiting (on the admission thread)
   */
  Admission(RouterOptions options, Consumer<InFlightRequest> starter) {
    this.options = options;
    this.starter = starter;
    this.starts =
        Executors.newSingleThreadExecutor(
            new ThreadFactoryBuilder().setNameFormat("router-admission").setDaemon(true).build());
  }

  /**
   * Takes {@code f}: true when it has a running slot now (the caller starts it), false when it
   * waits in the queue.
   *
   * @throws ServingException RESOURCE_EXHAUSTED when the queue is full too
   */
  boolean admit(InFlightRequest f) {
    synchronized (queue) {
      if (running.size() < options.maxActive()) {
        running.add(f);
        return true;
      }
      if (queue.size() < options.maxQueued()) {
        queue.add(f);
        return false;
      }
      throw ServingException.exhausted(
          "router queue is full: "
              + running.size()
              + " requests running and "
              + queue.size()
              + " waiting (limits "
              + options.maxActive()
              + " and "
              + options.maxQueued()
              + "); retry after 1000 ms");
    }
  }

  /**
   * {@code f} ended: its place in the queue or its running slot is freed; a freed slot goes to the
   * oldest waiting request still unfinished, started on the admission thread.
   */
  void ended(InFlightRequest f) {
    InFlightRequest next = null;
    synchronized (queue) {
      if (queue.remove(f) || !running.remove(f)) {
        return;
      }
      while (!queue.isEmpty() && running.size() < options.maxActive()) {
        InFlightRequest q = queue.poll();
        if (!q.isFinished()) { // a finished one leaves the queue here; its own end is a no-op
          running.add(q);
          next = q;
          break;
        }
      }
    }
    if (next != null) {
      InFlightRequest n = next;
      try {
        starts.execute(() -> starter.accept(n));
      } catch (RejectedExecutionException e) {
        // closed: the router fails every request still in flight
        LOG.debug("not starting {}: the router is closing", n.requestId());
      }
    }
  }

  /** Requests being worked on (reserving, prefilling or decoding). */
  int running() {
    synchronized (queue) {
      return running.size();
    }
  }

  /** Requests waiting for a slot. */
  int queued() {
    synchronized (queue) {
      return queue.size();
    }
  }

  /** Stops starting waiting requests (the router fails them) and ends the admission thread. */
  @Override
  public void close() {
    starts.shutdown();
    try {
      if (!starts.awaitTermination(5, TimeUnit.SECONDS)) {
        starts.shutdownNow();
      }
    } catch (InterruptedException e) {
      starts.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
