package dev.pdserve.launcher.faults;

import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.metrics.PrometheusText;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One row of the fault table: {@code streams} staggered streams through the router, one fault
 * injected {@code faultAt} after the first started, then every stream compared with the fault-free
 * run's tokens, the workers' reserved KV blocks read {@code settle} after the last stream ended,
 * and the faulted node replaced (or, after a freeze or a cut, checked to serve again).
 */
final class FaultRun {
  /** A fault: what it does to which node. */
  enum Kind {
    NONE,
    KILL,
    TERM,
    STOP,
    CUT
  }

  /** The fault of one row: {@code role} decode/prefill/expert; {@code defId} null = busiest. */
  record Fault(String name, Kind kind, String role, String defId) {}

  /** How the run is shaped. */
  record Shape(
      int streams,
      int maxTokens,
      Duration stagger,
      Duration faultAt,
      Duration freeze,
      Duration settle,
      Duration guard) {}

  /** What one row found. */
  record Result(
      String fault,
      String target,
      int streams,
      int same,
      int lost,
      int tokenLost,
      int duplicated,
      int changed,
      long strandedBlocks,
      double detectionSeconds,
      double maxResumeSeconds,
      double medianResumeSeconds,
      Map<String, Double> migrations,
      String recovery,
      List<String> errors,
      double seconds,
      int unchecked,
      List<String> liveLost) {}

  private FaultRun() {}

  /** Runs the streams; {@code reference} null records this run's tokens as the reference. */
  static Result run(
      FaultCluster cluster,
      Fault fault,
      Shape shape,
      List<int[]> reference,
      List<int[]> recordInto,
      PrintStream log)
      throws Exception {
    long t0 = System.nanoTime();
    PrometheusText routerBefore = Scrape.metrics(routerMetricsUrl(cluster));
    List<Streams.Stream> streams = new ArrayList<>();
    for (int i = 0; i < shape.streams(); i++) {
      streams.add(
          new Streams.Stream(
              Streams.request(fault.name(), i, shape.maxTokens()), System::nanoTime));
    }
    long deadlineSeconds = shape.guard().toSeconds();
    long start = System.nanoTime();
    long faultNanos = -1;
    FaultCluster.Node target = null;
    Watcher watcher = null;
    for (int i = 0; i < streams.size(); i++) {
      long startAt = start + i * shape.stagger().toNanos();
      if (fault.kind() != Kind.NONE
          && faultNanos < 0
          && startAt >= start + shape.faultAt().toNanos()) {
        target = chooseTarget(cluster, fault);
        watcher = new Watcher(cluster, target.id);
        faultNanos = inject(cluster, fault, target, start + shape.faultAt().toNanos(), log);
      }
      sleepUntil(startAt);
      streams.get(i).start(cluster.channel(), deadlineSeconds);
    }
    if (fault.kind() != Kind.NONE && faultNanos < 0) {
      long at = faultPoint(streams, start + shape.faultAt().toNanos(), shape);
      target = chooseTarget(cluster, fault);
      watcher = new Watcher(cluster, target.id);
      faultNanos = inject(cluster, fault, target, at, log);
    }
    if (fault.kind() == Kind.STOP || fault.kind() == Kind.CUT) {
      sleepUntil(faultNanos + shape.freeze().toNanos());
      if (fault.kind() == Kind.STOP) {
        Scrape.signal(target.pid(), "CONT");
      } else {
        cluster.cutGrpcLink(false);
      }
      log.println("  " + fault.name() + ": ended after " + shape.freeze().toSeconds() + " s");
    }
    for (Streams.Stream s : streams) {
      try {
        s.done.get(Math.max(1, deadlineSeconds + 30), TimeUnit.SECONDS);
      } catch (TimeoutException e) {
        // counted as lost below
      }
    }
    long lastEnd = System.nanoTime();
    FaultCluster.sleep(shape.settle().toMillis());
    long stranded = strandedBlocks(cluster, target, fault);
    PrometheusText routerAfter = Scrape.metrics(routerMetricsUrl(cluster));

    int same = 0;
    int lost = 0;
    int tokenLost = 0;
    int duplicated = 0;
    int changed = 0;
    int unchecked = 0;
    Set<String> errors = new LinkedHashSet<>();
    List<Double> resumes = new ArrayList<>();
    for (int i = 0; i < streams.size(); i++) {
      Streams.Stream s = streams.get(i);
      if (recordInto != null) {
        // a stream the fault-free run lost gives no reference: its index is not compared later
        recordInto.add(s.ok() ? s.tokenIds() : null);
      }
      if (!s.ok()) {
        lost++;
        errors.add(s.errorText());
        continue;
      }
      if (reference != null && reference.get(i) == null) {
        unchecked++;
        continue;
      }
      String cmp = reference == null ? "same" : Streams.compare(reference.get(i), s.tokenIds());
      switch (cmp) {
        case "same" -> same++;
        case "lost", "short" -> tokenLost++;
        case "duplicated" -> duplicated++;
        default -> changed++;
      }
      if (faultNanos > 0) {
        // every stream started before the fault and not finished by it: how long after the fault
        // its next token came (the killed node's streams: detection, re-prefill and resume)
        int before = s.countAt(faultNanos);
        if (s.startNanos < faultNanos && before < shape.maxTokens()) {
          long next = s.firstArrivalAfter(faultNanos);
          if (next > 0) {
            resumes.add((next - faultNanos) / 1e9);
          }
        }
      }
    }
    resumes.sort(Comparator.naturalOrder());
    Map<String, Double> migrations = new LinkedHashMap<>();
    for (String reason :
        List.of("decode_node_lost", "decode_node_silent", "prefill_node_lost", "drain")) {
      double d =
          Scrape.sum(routerAfter, "pdserve_request_migrations_total", Map.of("reason", reason))
              - Scrape.sum(
                  routerBefore, "pdserve_request_migrations_total", Map.of("reason", reason));
      if (d > 0) {
        migrations.put(reason, d);
      }
    }
    double detection = watcher == null ? -1 : watcher.stop(faultNanos);
    List<String> liveLost = watcher == null ? List.of() : watcher.othersLost();
    String recovery = fault.kind() == Kind.NONE ? "-" : restore(cluster, fault, target, log);
    return new Result(
        fault.name(),
        target == null ? "-" : target.id,
        streams.size(),
        same,
        lost,
        tokenLost,
        duplicated,
        changed,
        stranded,
        detection,
        resumes.isEmpty() ? -1 : resumes.get(resumes.size() - 1),
        resumes.isEmpty() ? -1 : resumes.get(resumes.size() / 2),
        migrations,
        recovery,
        List.copyOf(errors).subList(0, Math.min(3, errors.size())),
        (lastEnd - t0) / 1e9,
        unchecked,
        liveLost);
  }

  private static FaultCluster.Node chooseTarget(FaultCluster cluster, Fault fault) {
    if (fault.defId() != null) {
      return cluster.node(fault.defId());
    }
    // the node of that role the router lists with the most running sequences
    Map<String, Integer> running = new LinkedHashMap<>();
    try {
      for (NodeStatus n : cluster.listNodes()) {
        running.put(n.getId(), n.getRunningSequences() + n.getQueuedRequests());
      }
    } catch (RuntimeException e) {
      // fall back to the first node of the role
    }
    return cluster.live().stream()
        .filter(n -> n.role().equals(fault.role()) && !n.def.proxied())
        .max(Comparator.comparingInt(n -> running.getOrDefault(n.id, 0)))
        .orElseThrow();
  }

  private static long inject(
      FaultCluster cluster, Fault fault, FaultCluster.Node target, long at, PrintStream log) {
    sleepUntil(at);
    long now = System.nanoTime();
    switch (fault.kind()) {
      case KILL -> Scrape.signal(target.pid(), "KILL");
      case TERM -> Scrape.signal(target.pid(), "TERM");
      case STOP -> Scrape.signal(target.pid(), "STOP");
      case CUT -> cluster.cutGrpcLink(true);
      default -> throw new IllegalArgumentException(fault.kind().name());
    }
    log.println("  " + fault.name() + ": " + fault.kind() + " " + target.id);
    return now;
  }

  /** Reserved KV blocks of every worker still running, from its own metrics endpoint. */
  private static long strandedBlocks(FaultCluster cluster, FaultCluster.Node target, Fault fault) {
    long sum = 0;
    try {
      for (NodeStatus n : cluster.listNodes()) {
        boolean gone =
            target != null
                && n.getId().equals(target.id)
                && (fault.kind() == Kind.KILL || fault.kind() == Kind.TERM);
        if (gone || !(n.getRole().equals("decode") || n.getRole().equals("prefill"))) {
          continue;
        }
        PrometheusText m = Scrape.metrics(n.getMetricsUrl());
        double blocks = Scrape.sum(m, "pdserve_kv_reserved_blocks", Map.of());
        sum += blocks >= 0 ? (long) blocks : n.getKvReservedBlocks();
      }
    } catch (RuntimeException e) {
      return -1;
    }
    return sum;
  }

  /** Replaces a killed node; checks a frozen or cut-off one serves again, else replaces it. */
  private static String restore(
      FaultCluster cluster, Fault fault, FaultCluster.Node target, PrintStream log)
      throws Exception {
    if (fault.kind() == Kind.STOP || fault.kind() == Kind.CUT) {
      try {
        cluster.awaitAllActive(Duration.ofSeconds(30));
        return "serves again";
      } catch (TimeoutException e) {
        log.println("  " + target.id + " not ACTIVE 30 s after the fault ended; replacing it");
        cluster.replace(target.def.id(), Duration.ofSeconds(240));
        return "not ACTIVE after 30 s; replaced";
      }
    }
    cluster.replace(target.def.id(), Duration.ofSeconds(240));
    return "replaced";
  }

  static String routerMetricsUrl(FaultCluster cluster) {
    try {
      return cluster.listNodes().stream()
          .filter(n -> n.getRole().equals("router"))
          .map(NodeStatus::getMetricsUrl)
          .findFirst()
          .orElse(null);
    } catch (RuntimeException e) {
      return null;
    }
  }

  /**
   * When a fault after the last stream started is injected: at {@code faultAt}, or earlier, as soon
   * as every stream is decoding and the furthest has a quarter of its tokens — on a fast machine a
   * fixed instant can come after the streams ended, and a fault must hit streams in flight.
   */
  static long faultPoint(List<Streams.Stream> streams, long faultAt, Shape shape) {
    long guard = System.nanoTime() + shape.guard().toNanos();
    while (System.nanoTime() < Math.min(faultAt, guard)) {
      boolean allDecoding = true;
      int furthest = 0;
      for (Streams.Stream s : streams) {
        int n = s.count();
        allDecoding &= n > 0 || s.done.isDone();
        furthest = Math.max(furthest, n);
      }
      if (allDecoding && furthest >= Math.max(1, shape.maxTokens() / 4)) {
        return System.nanoTime();
      }
      FaultCluster.sleep(5);
    }
    return faultAt;
  }

  static void sleepUntil(long nanos) {
    long ms = (nanos - System.nanoTime()) / 1_000_000;
    if (ms > 0) {
      FaultCluster.sleep(ms);
    }
  }

  /**
   * Polls the router's view (every 100 ms, from the fault until the row's streams have settled) for
   * the moment the target stops being listed ACTIVE, and for any other node, ACTIVE when the fault
   * came, that stops being listed ACTIVE meanwhile: a live node's entry lost (e.g. a healthy member
   * split off while another one was frozen).
   */
  static final class Watcher {
    private final Thread thread;
    private volatile long notActiveAt = -1;
    private volatile boolean stop;
    private final Map<String, String> othersLost =
        new java.util.concurrent.ConcurrentSkipListMap<>();

    Watcher(FaultCluster cluster, String id) {
      thread =
          new Thread(
              () -> {
                Set<String> baseline = null;
                while (!stop) {
                  try {
                    List<NodeStatus> nodes = cluster.listNodes();
                    boolean active =
                        nodes.stream()
                            .anyMatch(n -> n.getId().equals(id) && n.getState().equals("ACTIVE"));
                    if (!active && notActiveAt < 0) {
                      notActiveAt = System.nanoTime();
                    }
                    if (baseline == null) {
                      baseline = new LinkedHashSet<>();
                      for (NodeStatus n : nodes) {
                        if (!n.getId().equals(id) && n.getState().equals("ACTIVE")) {
                          baseline.add(n.getId());
                        }
                      }
                    } else {
                      for (String other : baseline) {
                        String state =
                            nodes.stream()
                                .filter(n -> n.getId().equals(other))
                                .map(NodeStatus::getState)
                                .findFirst()
                                .orElse("gone");
                        if (!state.equals("ACTIVE")) {
                          othersLost.putIfAbsent(other, state);
                        }
                      }
                    }
                  } catch (RuntimeException e) {
                    // the router is busy; try again
                  }
                  FaultCluster.sleep(100);
                }
              },
              "faults-watcher");
      thread.setDaemon(true);
      thread.start();
    }

    /** Seconds from the fault to the router no longer listing the node ACTIVE, or -1. */
    double stop(long faultNanos) {
      stop = true;
      try {
        thread.join(2_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      long at = notActiveAt;
      return at < 0 ? -1 : Math.max(0, at - faultNanos) / 1e9;
    }

    /** The other nodes that stopped being listed ACTIVE ({@code id (state)}), in id order. */
    List<String> othersLost() {
      return othersLost.entrySet().stream()
          .map(e -> e.getKey() + " (" + e.getValue() + ")")
          .toList();
    }
  }
}
