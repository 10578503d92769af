package dev.pdserve.launcher.faults;

import dev.pdserve.launcher.faults.FaultRun.Fault;
import dev.pdserve.launcher.faults.FaultRun.Kind;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The fault suite on real processes (issue 14): a cluster of separate {@code pdserve} JVMs (router,
 * 2 prefill, 2 decode workers, 3 expert shards — experts 0-31 on two replicas, 32-63 on one; decode
 * d1 behind a loopback proxy), a fault-free run for the reference tokens, then one run per fault,
 * the overload part and optionally a soak. Writes {@code faults.md} and {@code faults.json} under
 * {@code --out}. Run by {@code scripts/faults/run.sh}; {@code --help} lists the options.
 */
public final class FaultSuite {
  static final List<Fault> ALL =
      List.of(
          new Fault("decode-kill", Kind.KILL, "decode", null),
          new Fault("decode-term", Kind.TERM, "decode", null),
          new Fault("decode-stop-20s", Kind.STOP, "decode", null),
          new Fault("decode-link-cut-20s", Kind.CUT, "decode", "d1"),
          new Fault("prefill-kill", Kind.KILL, "prefill", null),
          new Fault("prefill-term", Kind.TERM, "prefill", null),
          new Fault("prefill-stop-20s", Kind.STOP, "prefill", null),
          new Fault("expert-kill-replicated", Kind.KILL, "expert", "e0"),
          new Fault("expert-term-replicated", Kind.TERM, "expert", "e0"),
          new Fault("expert-stop-20s-replicated", Kind.STOP, "expert", "e0"),
          new Fault("expert-kill-unreplicated", Kind.KILL, "expert", "e2"));

  private FaultSuite() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = options(args);
    if (o.containsKey("help")) {
      System.out.println(
          "FaultSuite [--streams 16] [--tokens 300] [--faults all|a,b] [--out target/faults]"
              + " [--seed 7] [--stagger-ms 150] [--fault-at-ms 1500] [--freeze-s 20]"
              + " [--settle-s 15] [--overload-s 20] [--overload-multiple 10] [--no-overload]"
              + " [--soak MINUTES] [--soak-load 0.7] [--temperature 1.5] [--start-timeout-s 600]"
              + " [--max-queue-delay 2s] [--fresh-ports]\nfaults: "
              + ALL.stream().map(Fault::name).toList());
      return;
    }
    int streams = Integer.parseInt(o.getOrDefault("streams", "16"));
    int tokens = Integer.parseInt(o.getOrDefault("tokens", "300"));
    if (streams < 1 || streams > 64 || tokens < 8 || tokens > 2000) {
      throw new IllegalArgumentException("--streams 1..64 and --tokens 8..2000");
    }
    Streams.sampledTemperature = Float.parseFloat(o.getOrDefault("temperature", "1.5"));
    Duration startTimeout =
        Duration.ofSeconds(Long.parseLong(o.getOrDefault("start-timeout-s", "600")));
    Path out = Path.of(o.getOrDefault("out", "target/faults"));
    Files.createDirectories(out);
    PrintStream log = System.out;
    List<Fault> faults = new ArrayList<>();
    String which = o.getOrDefault("faults", "all");
    for (Fault f : ALL) {
      if (which.equals("all") || Arrays.asList(which.split(",")).contains(f.name())) {
        faults.add(f);
      }
    }
    if (faults.isEmpty() && !which.equals("none")) {
      throw new IllegalArgumentException("no such fault: " + which);
    }
    String maxQueueDelay = o.getOrDefault("max-queue-delay", "2s");
    FaultRun.Shape shape =
        new FaultRun.Shape(
            streams,
            tokens,
            Duration.ofMillis(Long.parseLong(o.getOrDefault("stagger-ms", "150"))),
            Duration.ofMillis(Long.parseLong(o.getOrDefault("fault-at-ms", "1500"))),
            Duration.ofSeconds(Long.parseLong(o.getOrDefault("freeze-s", "20"))),
            Duration.ofSeconds(Long.parseLong(o.getOrDefault("settle-s", "15"))),
            Duration.ofSeconds(Math.max(120, tokens)));
    FaultCluster.Spec spec =
        new FaultCluster.Spec(
            List.of(
                new FaultCluster.NodeDef("e0", "expert", "0-31", false),
                new FaultCluster.NodeDef("e1", "expert", "0-31", false),
                new FaultCluster.NodeDef("e2", "expert", "32-63", false),
                new FaultCluster.NodeDef("d0", "decode", null, false),
                new FaultCluster.NodeDef("d1", "decode", null, true),
                new FaultCluster.NodeDef("p0", "prefill", null, false),
                new FaultCluster.NodeDef("p1", "prefill", null, false),
                new FaultCluster.NodeDef("router", "router", null, false)),
            "tiny",
            Long.parseLong(o.getOrDefault("seed", "7")),
            "64m",
            "384m",
            Map.of("pdserve.router.max-queue-delay", "0"));
    Instant started = Instant.now();
    String load = loadAverage();
    log.println("fault suite: " + streams + " streams x " + tokens + " tokens; load " + load);
    List<FaultRun.Result> rows = new ArrayList<>();
    Overload.Result overload = null;
    List<Map<String, Object>> soak = List.of();
    if (!which.equals("none")) {
      runFaults(
          spec,
          shape,
          faults,
          out,
          started,
          load,
          rows,
          startTimeout,
          o.containsKey("fresh-ports"),
          log);
    }
    if (!o.containsKey("no-overload") || o.containsKey("soak")) {
      // its own cluster: the fault runs above have admission off (max-queue-delay 0) so that a
      // loaded machine's forecast cannot refuse a stream the table counts
      FaultCluster.Spec small =
          new FaultCluster.Spec(
              List.of(
                  new FaultCluster.NodeDef("p0", "prefill", null, false),
                  new FaultCluster.NodeDef("d0", "decode", null, false),
                  new FaultCluster.NodeDef("router", "router", null, false)),
              spec.preset(),
              spec.seed(),
              spec.kvBudget(),
              spec.heap(),
              Map.of("pdserve.router.max-queue-delay", maxQueueDelay));
      try (FaultCluster cluster = new FaultCluster(small, out.resolve("logs-overload"), log)) {
        cluster.start(startTimeout);
        double cap = Overload.capacity(cluster, 8, 32, Duration.ofSeconds(20));
        log.println("  capacity " + cap + " req/s (32-token requests, 8 closed-loop streams)");
        if (!o.containsKey("no-overload")) {
          overload =
              Overload.overload(
                  cluster,
                  cap,
                  Double.parseDouble(o.getOrDefault("overload-multiple", "10")),
                  32,
                  Duration.ofSeconds(Long.parseLong(o.getOrDefault("overload-s", "20"))),
                  maxQueueDelay,
                  log);
          log.println("  " + overload);
          write(out, started, load, streams, tokens, rows, overload, soak);
        }
        if (o.containsKey("soak")) {
          soak =
              Overload.soak(
                  cluster,
                  cap * Double.parseDouble(o.getOrDefault("soak-load", "0.7")),
                  32,
                  Integer.parseInt(o.get("soak")),
                  log);
        }
      }
    }
    write(out, started, load, streams, tokens, rows, overload, soak);
    log.println(Files.readString(out.resolve("faults.md")));
  }

  private static void runFaults(
      FaultCluster.Spec spec,
      FaultRun.Shape shape,
      List<Fault> faults,
      Path out,
      Instant started,
      String load,
      List<FaultRun.Result> rows,
      Duration startTimeout,
      boolean freshPorts,
      PrintStream log)
      throws Exception {
    try (FaultCluster cluster =
        new FaultCluster(spec, out.resolve("logs"), log).freshClusterPorts(freshPorts)) {
      cluster.start(startTimeout);
      List<int[]> reference = new ArrayList<>();
      rows.add(
          FaultRun.run(
              cluster, new Fault("none", Kind.NONE, "-", null), shape, null, reference, log));
      log.println("  " + rows.get(0));
      for (Fault f : faults) {
        FaultRun.Result r = FaultRun.run(cluster, f, shape, reference, null, log);
        rows.add(r);
        log.println("  " + r);
        write(out, started, load, shape.streams(), shape.maxTokens(), rows, null, List.of());
      }
    }
  }

  static String loadAverage() {
    try {
      return Files.readString(Path.of("/proc/loadavg")).trim().split(" ", 4)[0]
          + " (1-min load average, "
          + Runtime.getRuntime().availableProcessors()
          + " cores)";
    } catch (java.io.IOException e) {
      return "unknown";
    }
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> o = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument " + args[i]);
      }
      String k = args[i].substring(2);
      if (k.equals("help") || k.equals("no-overload") || k.equals("fresh-ports")) {
        o.put(k, "true");
      } else if (i + 1 < args.length) {
        o.put(k, args[++i]);
      } else {
        throw new IllegalArgumentException("--" + k + " needs a value");
      }
    }
    return o;
  }

  private static void write(
      Path out,
      Instant started,
      String load,
      int streams,
      int tokens,
      List<FaultRun.Result> rows,
      Overload.Result overload,
      List<Map<String, Object>> soak)
      throws java.io.IOException {
    Files.writeString(
        out.resolve("faults.md"),
        FaultReport.markdown(started, load, streams, tokens, rows, overload, soak));
    Files.writeString(
        out.resolve("faults.json"),
        FaultReport.json(started, load, streams, tokens, rows, overload, soak));
  }
}
