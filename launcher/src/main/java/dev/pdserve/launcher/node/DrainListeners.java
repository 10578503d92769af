package dev.pdserve.launcher.node;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/** Who hears of a node's drain steps; a failing listener is logged, never stops the drain. */
final class DrainListeners {
  private static final Logger LOG = LogManager.getLogger(DrainListeners.class);
  private final List<Consumer<DrainPhase>> listeners = new CopyOnWriteArrayList<>();

  void add(Consumer<DrainPhase> listener) {
    listeners.add(listener);
  }

  /** Tells every listener, on this thread, that {@code phase} begins. */
  void fire(DrainPhase phase) {
    for (Consumer<DrainPhase> l : listeners) {
      try {
        l.accept(phase);
      } catch (RuntimeException e) {
        LOG.warn("drain listener failed at {}", phase, e);
      }
    }
  }
}
