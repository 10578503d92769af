package dev.pdserve.core;

import dev.pdserve.core.logging.LogContext;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.logging.log4j.ThreadContext;

/**
 * Threads named {@code <prefix>-<n>}, daemon or not; the one way core components make threads. With
 * a node id, each thread carries it in its log context ({@link LogContext#NODE_ID}) for life.
 */
public final class NamedThreadFactory implements ThreadFactory {
  private final String prefix;
  private final boolean daemon;
  private final String nodeId;
  private final AtomicInteger next = new AtomicInteger();

  public NamedThreadFactory(String prefix, boolean daemon) {
    this(prefix, daemon, null);
  }

  /**
   * @param nodeId the node whose work the threads do, put into every thread's log context; null for
   *     none
   */
  public NamedThreadFactory(String prefix, boolean daemon, String nodeId) {
    this.prefix = prefix;
    this.daemon = daemon;
    this.nodeId = nodeId;
  }

  /** A single thread named exactly {@code name} (no counter), e.g. an engine's loop. */
  public static Thread thread(String name, boolean daemon, String nodeId, Runnable body) {
    Thread t = new Thread(withNode(nodeId, body), name);
    t.setDaemon(daemon);
    return t;
  }

  @Override
  public Thread newThread(Runnable r) {
    Thread t = new Thread(withNode(nodeId, r), prefix + "-" + next.getAndIncrement());
    t.setDaemon(daemon);
    return t;
  }

  private static Runnable withNode(String nodeId, Runnable r) {
    if (nodeId == null) {
      return r;
    }
    return () -> {
      ThreadContext.put(LogContext.NODE_ID, nodeId);
      r.run();
    };
  }
}
