package dev.pdserve.launcher.faults;

import dev.pdserve.launcher.cluster.InJvmCluster;
import dev.pdserve.launcher.node.NodeJvm;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * Failure detection on a loaded machine (issue 14: "no false suspicion of healthy members at 100 %
 * CPU, yet a real freeze found within ~5 s — measure both"). For each detector setting: a cluster
 * of bare members ({@link SuspicionMember}), each its own JVM, then busy-loop processes holding
 * every core (two per core by default) for some minutes while every member reports each member it
 * drops — every drop is a false suspicion, nobody is frozen — and then, still under the burn, one
 * member SIGSTOPped: the time until each other member drops it is the detection time. Writes {@code
 * suspicion.md} under {@code --out}; every member's output under {@code logs/}.
 *
 * <pre>
 * scripts/faults/run.sh suspicion [--minutes 3] [--members 4] [--burners 2xcores]
 *     [--settings PHI_ACCRUAL:8,PHI_ACCRUAL:10,PHI_ACCRUAL:12,DEADLINE:10] [--freeze-s 20]
 *     [--data true] [--full-members true] [--member-jvm-flags "-Dhazelcast.partition.count=31"]
 *     [--out DIR]
 * </pre>
 */
public final class SuspicionRun {
  private SuspicionRun() {}

  record Line(String kind, String id, long atMillis) {}

  static final class Member implements AutoCloseable {
    final String id;
    final Process process;
    final List<Line> lines = new CopyOnWriteArrayList<>();
    volatile String address;

    Member(String id, List<String> cmd, Path log) throws IOException {
      this.id = id;
      this.process = new ProcessBuilder(cmd).redirectErrorStream(true).start();
      Thread reader =
          new Thread(
              () -> {
                try (BufferedReader r =
                        new BufferedReader(
                            new InputStreamReader(
                                process.getInputStream(), StandardCharsets.UTF_8));
                    PrintWriter w = new PrintWriter(Files.newBufferedWriter(log))) {
                  for (String l; (l = r.readLine()) != null; ) {
                    w.println(l);
                    w.flush();
                    String[] f = l.split(" ");
                    if (f[0].equals("READY") && f.length >= 2) {
                      address = f[1];
                    } else if ((f[0].equals("REMOVED") || f[0].equals("ADDED")) && f.length >= 3) {
                      lines.add(new Line(f[0], f[1], Long.parseLong(f[2])));
                    }
                  }
                } catch (IOException | RuntimeException e) {
                  // gone
                }
              },
              "suspicion-" + id);
      reader.setDaemon(true);
      reader.start();
    }

    @Override
    public void close() {
      process.destroyForcibly();
    }
  }

  record Result(
      String setting,
      int members,
      int burners,
      double minutes,
      double load,
      int falseDrops,
      String dropped,
      int rejoins,
      long detectMinMs,
      long detectMaxMs,
      int cascadeDrops,
      String cascadeDropped) {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new LinkedHashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument " + args[i]);
      }
      o.put(args[i].substring(2), args[i + 1]);
    }
    double minutes = Double.parseDouble(o.getOrDefault("minutes", "3"));
    int members = Integer.parseInt(o.getOrDefault("members", "4"));
    int burners =
        Integer.parseInt(
            o.getOrDefault(
                "burners", Integer.toString(2 * Runtime.getRuntime().availableProcessors())));
    List<String> settings =
        List.of(
            o.getOrDefault("settings", "PHI_ACCRUAL:8,PHI_ACCRUAL:10,PHI_ACCRUAL:12,DEADLINE:10")
                .split(","));
    Path out = Path.of(o.getOrDefault("out", "target/suspicion"));
    int freezeSeconds = Integer.parseInt(o.getOrDefault("freeze-s", "20"));
    withData = Boolean.parseBoolean(o.getOrDefault("data", "false"));
    extraFlags = o.getOrDefault("member-jvm-flags", "");
    fullMembers = Boolean.parseBoolean(o.getOrDefault("full-members", "false"));
    Files.createDirectories(out.resolve("logs"));
    List<Result> results = new ArrayList<>();
    for (String setting : settings) {
      results.add(runOne(setting, members, burners, minutes, freezeSeconds * 1000L, out));
      write(out.resolve("suspicion.md"), results);
    }
    System.out.println(Files.readString(out.resolve("suspicion.md")));
  }

  private static volatile boolean withData;
  private static volatile String extraFlags = "";

  private static volatile boolean fullMembers;

  private static List<String> memberCommand(
      String cluster, String seeds, String id, String detector, String phi, int port) {
    List<String> cmd = NodeJvm.javaWithThisJvmsModuleFlags();
    cmd.addAll(
        List.of(
            "-Xmx192m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dpdserve.log.level=warn",
            "-Dhazelcast.logging.type=log4j2",
            "-Dhazelcast.phone.home.enabled=false",
            "-cp",
            System.getProperty("java.class.path"),
            SuspicionMember.class.getName(),
            cluster,
            seeds,
            id,
            detector,
            phi));
    cmd.add(withData ? "data" : "-");
    cmd.add(Integer.toString(port));
    if (!extraFlags.isBlank()) {
      cmd.addAll(1, List.of(extraFlags.trim().split("\\s+")));
    }
    return cmd;
  }

  private static Result runOne(
      String setting, int n, int burnerCount, double minutes, long freezeMillis, Path out)
      throws Exception {
    String[] s = setting.split(":");
    String detector = s[0].toUpperCase(Locale.ROOT);
    String phi = s.length > 1 ? s[1] : "10";
    String cluster = "suspicion-" + UUID.randomUUID().toString().substring(0, 8);
    String tag = detector.toLowerCase(Locale.ROOT) + "-" + phi;
    List<Member> ms = new ArrayList<>();
    List<Process> burners = new ArrayList<>();
    try {
      log("%s: starting %d members", setting, n);
      // Either every member knows only the first one (cluster ports chosen by the OS), or, as in
      // the fault suite and `pdserve local`, every member has a fixed port and lists them all.
      int[] ports = fullMembers ? NodeJvm.freeLoopbackPorts(n) : new int[n];
      String all =
          java.util.Arrays.stream(ports)
              .mapToObj(p -> "127.0.0.1:" + p)
              .collect(java.util.stream.Collectors.joining(","));
      Member first =
          new Member(
              "m0",
              memberCommand(cluster, fullMembers ? all : "-", "m0", detector, phi, ports[0]),
              out.resolve("logs/" + tag + "-m0.log"));
      ms.add(first);
      await(() -> first.address != null, 120, "m0 never became ready");
      for (int i = 1; i < n; i++) {
        String id = "m" + i;
        ms.add(
            new Member(
                id,
                memberCommand(
                    cluster, fullMembers ? all : first.address, id, detector, phi, ports[i]),
                out.resolve("logs/" + tag + "-" + id + ".log")));
      }
      await(() -> ms.stream().allMatch(m -> m.address != null), 180, "members never ready");
      Thread.sleep(5_000); // let the heartbeat history fill
      for (int i = 0; i < burnerCount; i++) {
        burners.add(new ProcessBuilder("sh", "-c", "while :; do :; done").start());
      }
      long burnStart = System.currentTimeMillis();
      long burnEnd = burnStart + (long) (minutes * 60_000);
      double loadSum = 0;
      int loadSamples = 0;
      while (System.currentTimeMillis() < burnEnd) {
        Thread.sleep(Math.min(10_000, Math.max(1, burnEnd - System.currentTimeMillis())));
        loadSum += loadAverage();
        loadSamples++;
        log(
            "%s: burning %.1f/%.1f min, %d false drops so far",
            setting,
            (System.currentTimeMillis() - burnStart) / 60_000.0,
            minutes,
            drops(ms, burnStart, Long.MAX_VALUE).size());
      }
      List<Line> falseDrops = drops(ms, burnStart, System.currentTimeMillis());
      int rejoins =
          (int)
              ms.stream()
                  .flatMap(m -> m.lines.stream())
                  .filter(l -> l.kind().equals("ADDED") && l.atMillis() >= burnStart)
                  .count();
      // Still under the burn: freeze the last member and time each other member's drop of it.
      Member frozen = ms.get(n - 1);
      long frozenAt = System.currentTimeMillis();
      signal(frozen.process, "STOP");
      log("%s: froze %s", setting, frozen.id);
      List<Member> others = ms.subList(0, n - 1);
      await(
          () ->
              others.stream()
                  .allMatch(
                      m ->
                          m.lines.stream()
                              .anyMatch(
                                  l ->
                                      l.kind().equals("REMOVED")
                                          && l.id().equals(frozen.id)
                                          && l.atMillis() >= frozenAt)),
          60,
          "the frozen member was not dropped by all");
      long min = Long.MAX_VALUE;
      long max = 0;
      for (Member m : others) {
        long at =
            m.lines.stream()
                .filter(
                    l ->
                        l.kind().equals("REMOVED")
                            && l.id().equals(frozen.id)
                            && l.atMillis() >= frozenAt)
                .mapToLong(Line::atMillis)
                .min()
                .orElse(frozenAt);
        min = Math.min(min, at - frozenAt);
        max = Math.max(max, at - frozenAt);
      }
      // The rest of the freeze and as long again after waking: does dropping the frozen member
      // make the others drop healthy ones (a cascade), or does its waking?
      long wakeAt = frozenAt + freezeMillis;
      Thread.sleep(Math.max(0, wakeAt - System.currentTimeMillis()));
      signal(frozen.process, "CONT");
      log("%s: woke %s", setting, frozen.id);
      Thread.sleep(freezeMillis);
      List<Line> cascade =
          others.stream()
              .flatMap(m -> m.lines.stream())
              .filter(
                  l ->
                      l.kind().equals("REMOVED")
                          && !l.id().equals(frozen.id)
                          && l.atMillis() >= frozenAt)
              .toList();
      TreeSet<String> cascaded = new TreeSet<>();
      cascade.forEach(l -> cascaded.add(l.id() + "@" + (l.atMillis() - frozenAt) / 1000 + "s"));
      TreeSet<String> who = new TreeSet<>();
      falseDrops.forEach(l -> who.add(l.id()));
      Result r =
          new Result(
              setting,
              n,
              burnerCount,
              minutes,
              loadSamples == 0 ? 0 : loadSum / loadSamples,
              falseDrops.size(),
              who.isEmpty() ? "-" : String.join(" ", who),
              rejoins,
              min,
              max,
              cascade.size(),
              cascaded.isEmpty() ? "-" : String.join(" ", cascaded));
      log("%s: %s", setting, r);
      return r;
    } finally {
      burners.forEach(Process::destroyForcibly);
      ms.forEach(Member::close);
      for (Member m : ms) {
        m.process.waitFor(10, TimeUnit.SECONDS);
      }
    }
  }

  private static List<Line> drops(List<Member> ms, long from, long to) {
    return ms.stream()
        .flatMap(m -> m.lines.stream())
        .filter(l -> l.kind().equals("REMOVED") && l.atMillis() >= from && l.atMillis() < to)
        .toList();
  }

  private static double loadAverage() {
    try {
      return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).split(" ")[0]);
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  private static void signal(Process p, String sig) throws Exception {
    Process k = new ProcessBuilder("kill", "-" + sig, Long.toString(p.pid())).inheritIO().start();
    if (k.waitFor() != 0) {
      throw new IllegalStateException("kill -" + sig + " failed");
    }
  }

  private static void await(BooleanSupplier c, int seconds, String what) {
    InJvmCluster.await(Duration.ofSeconds(seconds), c, what);
  }

  private static void log(String fmt, Object... args) {
    System.out.printf("%tT %s%n", System.currentTimeMillis(), String.format(fmt, args));
    System.out.flush();
  }

  private static void write(Path file, List<Result> rs) throws IOException {
    StringBuilder b = new StringBuilder();
    b.append(
        "| detector | members | burners | burn (min) | mean load | false drops (events) |"
            + " members dropped | rejoins | freeze detected (s, first / last member) | healthy"
            + " members dropped during the freeze and after waking |\n");
    b.append("|---|---|---|---|---|---|---|---|---|---|\n");
    for (Result r : rs) {
      b.append(
          String.format(
              Locale.ROOT,
              "| %s | %d | %d | %.1f | %.1f | %d | %s | %d | %.2f / %.2f | %d: %s |%n",
              r.setting(),
              r.members(),
              r.burners(),
              r.minutes(),
              r.load(),
              r.falseDrops(),
              r.dropped(),
              r.rejoins(),
              r.detectMinMs() / 1000.0,
              r.detectMaxMs() / 1000.0,
              r.cascadeDrops(),
              r.cascadeDropped()));
    }
    Files.writeString(file, b.toString());
  }
}
