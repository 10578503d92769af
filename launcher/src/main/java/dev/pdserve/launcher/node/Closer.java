package dev.pdserve.launcher.node;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Closes what a node opened, each exactly once: stage by stage in {@link Stage} order, within a
 * stage in reverse order of adding (what was opened last, and so may depend on what came before,
 * closes first). Failures are logged, never thrown. It remembers what it closed, in order.
 */
final class Closer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(Closer.class);

  /** When a resource closes, relative to the others. */
  enum Stage {
    /**
     * What acts on the cluster in the node's name: the coordinator, then the registry entry
     * (removed, so routers stop choosing the node).
     */
    PRESENCE,
    /** Engines: what they still hold ends with UNAVAILABLE, their threads stop. */
    WORK,
    /** Servers stop: gRPC (given what is left of a drain), HTTP, Flight, the metrics endpoint. */
    ENDPOINTS,
    /** Model sessions, expert sessions, weights, KV pool, clients and channels. */
    RESOURCES,
    /** Registry views and listeners, then the Hazelcast member leaves the cluster. */
    CLUSTER,
    /** Arrow allocators: they hold zero bytes once everything above closed. */
    MEMORY
  }

  /** One resource that was closed, under the name it was added with. */
  record Closed(Stage stage, String name) {}

  private record Entry(Stage stage, String name, AutoCloseable resource) {}

  private final Map<Stage, Deque<Entry>> open = new EnumMap<>(Stage.class);
  private final List<Closed> closed = new ArrayList<>();

  Closer() {
    for (Stage s : Stage.values()) {
      open.put(s, new ArrayDeque<>());
    }
  }

  /** Takes ownership of {@code resource}: it closes in {@code stage}. Returns it. */
  synchronized <T extends AutoCloseable> T add(Stage stage, String name, T resource) {
    open.get(stage).push(new Entry(stage, name, resource));
    return resource;
  }

  /** Closes {@code resource} now, before its stage, if this closer still holds it. */
  void closeNow(AutoCloseable resource) {
    Entry e = take(resource);
    if (e != null) {
      close(e);
    }
  }

  /** Closes every stage up to and including {@code last} (those already closed stay closed). */
  void closeThrough(Stage last) {
    for (Stage s : Stage.values()) {
      if (s.compareTo(last) > 0) {
        return;
      }
      Entry e;
      while ((e = next(s)) != null) {
        close(e);
      }
    }
  }

  /** Closes everything still open. Idempotent. */
  @Override
  public void close() {
    closeThrough(Stage.MEMORY);
  }

  /** What was closed, in the order it was. */
  synchronized List<Closed> closed() {
    return List.copyOf(closed);
  }

  /** What is still open, in the order it would close. */
  synchronized List<Closed> stillOpen() {
    List<Closed> out = new ArrayList<>();
    for (Deque<Entry> stage : open.values()) {
      stage.forEach(e -> out.add(new Closed(e.stage(), e.name())));
    }
    return out;
  }

  private synchronized Entry next(Stage s) {
    return open.get(s).poll();
  }

  private synchronized Entry take(AutoCloseable resource) {
    for (Deque<Entry> stage : open.values()) {
      for (Iterator<Entry> it = stage.iterator(); it.hasNext(); ) {
        Entry e = it.next();
        if (e.resource() == resource) {
          it.remove();
          return e;
        }
      }
    }
    return null;
  }

  /** Closes outside the lock: a server's close may wait seconds for its calls. */
  private void close(Entry e) {
    try {
      e.resource().close();
    } catch (Exception ex) {
      LOG.warn("closing {} failed: {}", e.name(), ex.toString());
    }
    synchronized (this) {
      closed.add(new Closed(e.stage(), e.name()));
    }
  }
}
