package dev.pdserve.launcher.node;

import java.util.ArrayDeque;
import java.util.Deque;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Closes what a node opened, in reverse order, each exactly once, logging (not throwing) failures.
 */
final class Closer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Closer.class);
  private final Deque<AutoCloseable> stack = new ArrayDeque<>();

  <T extends AutoCloseable> T add(T c) {
    stack.push(c);
    return c;
  }

  @Override
  public void close() {
    AutoCloseable c;
    while ((c = stack.poll()) != null) {
      try {
        c.close();
      } catch (Exception e) {
        LOG.warn("closing {} failed: {}", c, e.toString());
      }
    }
  }
}
