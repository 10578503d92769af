package dev.pdserve.router;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.ToDoubleFunction;
import java.util.function.ToIntFunction;
import java.util.random.RandomGenerator;

/**
 * Load-aware choice of prefill and decode nodes: the power of two choices. Two candidates are drawn
 * at random and the less loaded wins. Prefill load is the prompt tokens queued on the node (as it
 * last reported, plus what this router sent since); decode load is the running sequences weighted
 * by KV occupancy (plus this router's streams on it).
 */
public final class NodeSelector {
  private final Map<String, AtomicLong> prefillTokens = new ConcurrentHashMap<>();
  private final Map<String, AtomicLong> decodeStreams = new ConcurrentHashMap<>();
  private final RandomGenerator random;

  /** Draws candidates with {@link ThreadLocalRandom}, from any thread (the router). */
  public static NodeSelector withThreadLocalRandom() {
    return new NodeSelector(null);
  }

  /**
   * Draws candidates from {@code random} (the simulator passes a seeded one, so runs repeat);
   * {@code null} means {@link ThreadLocalRandom}. A given generator is not synchronised: use the
   * selector from one thread then.
   */
  public NodeSelector(RandomGenerator random) {
    this.random = random;
  }

  public NodeInfo choosePrefill(List<NodeInfo> nodes, List<String> exclude) {
    return choose(nodes, exclude, this::prefillScore);
  }

  /**
   * Prefix-aware choice of a prefill node: when some candidate likely holds a cached prefix of the
   * prompt ({@code cachedTokens}), the one with the lowest {@code prefillScore − weight · cached}
   * wins (ties to the longer prefix); otherwise the power of two choices as {@link
   * #choosePrefill(List, List)}.
   */
  public NodeInfo choosePrefill(
      List<NodeInfo> nodes,
      List<String> exclude,
      ToIntFunction<NodeInfo> cachedTokens,
      double weight) {
    List<NodeInfo> c = nodes.stream().filter(n -> !exclude.contains(n.id())).toList();
    NodeInfo best = null;
    double bestScore = 0;
    int bestCached = 0;
    boolean anyCached = false;
    for (NodeInfo n : c) {
      int cached = cachedTokens.applyAsInt(n);
      anyCached |= cached > 0;
      double s = prefillScore(n) - weight * cached;
      if (best == null || s < bestScore || (s == bestScore && cached > bestCached)) {
        best = n;
        bestScore = s;
        bestCached = cached;
      }
    }
    return anyCached ? best : choosePrefill(nodes, exclude);
  }

  public NodeInfo chooseDecode(List<NodeInfo> nodes, List<String> exclude) {
    return choose(nodes, exclude, this::decodeScore);
  }

  private NodeInfo choose(
      List<NodeInfo> nodes, List<String> exclude, ToDoubleFunction<NodeInfo> score) {
    List<NodeInfo> c = nodes.stream().filter(n -> !exclude.contains(n.id())).toList();
    if (c.isEmpty()) {
      return null;
    }
    if (c.size() == 1) {
      return c.get(0);
    }
    RandomGenerator r = random == null ? ThreadLocalRandom.current() : random;
    NodeInfo a = c.get(r.nextInt(c.size()));
    NodeInfo b = c.get(r.nextInt(c.size() - 1));
    if (b == a) {
      b = c.get(c.size() - 1);
    }
    double sa = score.applyAsDouble(a);
    double sb = score.applyAsDouble(b);
    return sa <= sb ? a : b;
  }

  double prefillScore(NodeInfo n) {
    Load l = n.load();
    return (l == null ? 0 : l.queuedPromptTokens()) + counter(prefillTokens, n.id()).get();
  }

  double decodeScore(NodeInfo n) {
    Load l = n.load();
    double running = (l == null ? 0 : l.runningSequences()) + counter(decodeStreams, n.id()).get();
    double occupancy = l == null ? 0 : l.kvOccupancy();
    return running * (1 + 4 * occupancy) + 8 * occupancy;
  }

  /**
   * Prompt tokens this selector's user sent to prefill node {@code node} and not yet heard back.
   */
  public long prefillTokensInFlight(String node) {
    AtomicLong c = prefillTokens.get(node);
    return c == null ? 0 : c.get();
  }

  public void prefillStarted(String node, long tokens) {
    counter(prefillTokens, node).addAndGet(tokens);
  }

  public void prefillEnded(String node, long tokens) {
    counter(prefillTokens, node).addAndGet(-tokens);
  }

  public void decodeStarted(String node) {
    counter(decodeStreams, node).incrementAndGet();
  }

  public void decodeEnded(String node) {
    counter(decodeStreams, node).decrementAndGet();
  }

  private static AtomicLong counter(Map<String, AtomicLong> m, String id) {
    return m.computeIfAbsent(id, k -> new AtomicLong());
  }
}
