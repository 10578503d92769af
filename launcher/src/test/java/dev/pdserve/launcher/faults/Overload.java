package dev.pdserve.launcher.faults;

import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.metrics.PrometheusText;
import io.grpc.Status;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The overload part (capacity measured closed-loop, then an open loop at a multiple of it) and the
 * soak (an open loop at a fraction of capacity for minutes, sampling what must not grow).
 */
final class Overload {
  private Overload() {}

  /** What the overload part found. */
  record Result(
      double capacityPerSecond,
      double offeredPerSecond,
      int sent,
      int refused,
      int admitted,
      int failed,
      double refusalP50Ms,
      double refusalP99Ms,
      double refusalMaxMs,
      double admittedTtftP50Seconds,
      double admittedTtftP99Seconds,
      String maxQueueDelay,
      long rssBeforeKb,
      long rssAfterKb) {}

  /** Completed requests per second with {@code concurrency} closed-loop streams for {@code d}. */
  static double capacity(FaultCluster cluster, int concurrency, int maxTokens, Duration d) {
    long end = System.nanoTime() + d.toNanos();
    int[] done = {0};
    List<Thread> threads = new ArrayList<>();
    for (int c = 0; c < concurrency; c++) {
      int lane = c;
      Thread t =
          new Thread(
              () -> {
                int k = 0;
                while (System.nanoTime() < end) {
                  Streams.Stream s =
                      new Streams.Stream(
                          Streams.request("cap" + lane + "x" + k++, 2 * lane, maxTokens),
                          System::nanoTime);
                  s.start(cluster.channel(), 120);
                  s.done.join();
                  if (s.ok() && System.nanoTime() < end) {
                    synchronized (done) {
                      done[0]++;
                    }
                  }
                }
              });
      t.start();
      threads.add(t);
    }
    for (Thread t : threads) {
      try {
        t.join();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    return done[0] / (d.toNanos() / 1e9);
  }

  /** Sends {@code rate} requests per second for {@code d}, open loop, and sorts the answers. */
  static Result overload(
      FaultCluster cluster,
      double capacity,
      double multiple,
      int maxTokens,
      Duration d,
      String maxQueueDelay,
      PrintStream log) {
    long rssBefore = rss(cluster);
    double rate = Math.max(1, capacity * multiple);
    List<Streams.Stream> sent = openLoop(cluster, rate, maxTokens, d, "ovl");
    for (Streams.Stream s : sent) {
      try {
        s.done.get(180, TimeUnit.SECONDS);
      } catch (Exception e) {
        // counted as failed
      }
    }
    FaultCluster.sleep(10_000);
    long rssAfter = rss(cluster);
    List<Double> refusals = new ArrayList<>();
    List<Double> ttfts = new ArrayList<>();
    int failed = 0;
    for (Streams.Stream s : sent) {
      if (s.error != null && s.error.getCode() == Status.Code.RESOURCE_EXHAUSTED) {
        refusals.add((s.endNanos - s.startNanos) / 1e6);
      } else if (s.ok()) {
        ttfts.add((s.firstTokenNanos() - s.startNanos) / 1e9);
      } else {
        failed++;
      }
    }
    Collections.sort(refusals);
    Collections.sort(ttfts);
    slices(sent, log);
    log.println(
        "  overload: "
            + sent.size()
            + " sent, "
            + refusals.size()
            + " refused, "
            + ttfts.size()
            + " admitted, "
            + failed
            + " failed otherwise");
    return new Result(
        capacity,
        rate,
        sent.size(),
        refusals.size(),
        ttfts.size(),
        failed,
        pct(refusals, 0.5),
        pct(refusals, 0.99),
        pct(refusals, 1.0),
        pct(ttfts, 0.5),
        pct(ttfts, 0.99),
        maxQueueDelay,
        rssBefore,
        rssAfter);
  }

  private static final java.util.regex.Pattern FORECAST =
      java.util.regex.Pattern.compile(
          "wait about ([0-9.]+) s for the ([0-9]+) prompt tokens ahead of it \\(at ([0-9]+) prompt");

  /**
   * Per 2-second slice of send time: requests sent, refused, admitted, the admitted requests' TTFT
   * p50/p99 and the forecast the refusals in that slice quoted (median wait, tokens ahead, rate).
   */
  static void slices(List<Streams.Stream> sent, PrintStream log) {
    if (sent.isEmpty()) {
      return;
    }
    long t0 = sent.get(0).startNanos;
    Map<Long, List<Streams.Stream>> bySlice = new java.util.TreeMap<>();
    for (Streams.Stream s : sent) {
      bySlice.computeIfAbsent((s.startNanos - t0) / 2_000_000_000L, k -> new ArrayList<>()).add(s);
    }
    log.println(
        "  slice(s) sent refused admitted ttft_p50 ttft_p99 | refusal forecast: wait ahead rate");
    for (Map.Entry<Long, List<Streams.Stream>> e : bySlice.entrySet()) {
      List<Double> ttft = new ArrayList<>();
      List<Double> wait = new ArrayList<>();
      List<Double> ahead = new ArrayList<>();
      List<Double> rate = new ArrayList<>();
      int refused = 0;
      for (Streams.Stream s : e.getValue()) {
        if (s.error != null && s.error.getCode() == Status.Code.RESOURCE_EXHAUSTED) {
          refused++;
          java.util.regex.Matcher m = FORECAST.matcher(String.valueOf(s.error.getDescription()));
          if (m.find()) {
            wait.add(Double.parseDouble(m.group(1)));
            ahead.add(Double.parseDouble(m.group(2)));
            rate.add(Double.parseDouble(m.group(3)));
          }
        } else if (s.ok()) {
          ttft.add((s.firstTokenNanos() - s.startNanos) / 1e9);
        }
      }
      Collections.sort(ttft);
      Collections.sort(wait);
      Collections.sort(ahead);
      Collections.sort(rate);
      log.println(
          String.format(
              java.util.Locale.ROOT,
              "  %4d %5d %7d %8d %8.2f %8.2f | %6.2f %6.0f %7.0f",
              e.getKey() * 2,
              e.getValue().size(),
              refused,
              ttft.size(),
              pct(ttft, 0.5),
              pct(ttft, 0.99),
              pct(wait, 0.5),
              pct(ahead, 0.5),
              pct(rate, 0.5)));
    }
  }

  static List<Streams.Stream> openLoop(
      FaultCluster cluster, double rate, int maxTokens, Duration d, String prefix) {
    List<Streams.Stream> sent = new ArrayList<>();
    long start = System.nanoTime();
    long gap = (long) (1e9 / rate);
    for (long i = 0; start + i * gap < start + d.toNanos(); i++) {
      FaultRun.sleepUntil(start + i * gap);
      Streams.Stream s =
          new Streams.Stream(
              Streams.request(prefix + i, (int) (2 * (i % 8)), maxTokens), System::nanoTime);
      s.start(cluster.channel(), 180);
      sent.add(s);
    }
    return sent;
  }

  /** Summed RSS of every node process, in kB. */
  static long rss(FaultCluster cluster) {
    long sum = 0;
    for (FaultCluster.Node n : cluster.live()) {
      sum += Math.max(0, Scrape.procStatus(n.pid(), "VmRSS"));
    }
    return sum;
  }

  /**
   * Open loop at {@code rate} for {@code minutes}, sampling once a minute (and at the start) per
   * node: reserved KV blocks, threads, heap after a full GC, RSS and each worker's Arrow allocated
   * bytes. Returns the rows.
   */
  static List<Map<String, Object>> soak(
      FaultCluster cluster, double rate, int maxTokens, int minutes, PrintStream log) {
    List<Map<String, Object>> rows = new ArrayList<>();
    long start = System.nanoTime();
    int[] errors = {0};
    Thread load =
        new Thread(
            () -> {
              for (int m = 0; m < minutes; m++) {
                for (Streams.Stream s :
                    openLoop(cluster, rate, maxTokens, Duration.ofMinutes(1), "soak" + m + "-")) {
                  s.done.whenComplete(
                      (v, e) -> {
                        if (!s.ok()) {
                          synchronized (errors) {
                            errors[0]++;
                          }
                        }
                      });
                }
              }
            },
            "soak-load");
    load.start();
    for (int m = 0; m <= minutes; m++) {
      FaultRun.sleepUntil(start + TimeUnit.MINUTES.toNanos(m));
      rows.add(sample(cluster, m, errors[0]));
      log.println("  soak minute " + m + ": " + rows.get(rows.size() - 1));
    }
    try {
      load.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return rows;
  }

  private static Map<String, Object> sample(FaultCluster cluster, int minute, int errors) {
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("minute", minute);
    row.put("failed_requests", errors);
    Map<String, String> metricsUrls = new LinkedHashMap<>();
    try {
      for (NodeStatus n : cluster.listNodes()) {
        metricsUrls.put(n.getId(), n.getMetricsUrl());
      }
    } catch (RuntimeException e) {
      // sampled without the metrics
    }
    long kv = 0;
    long threads = 0;
    long heap = 0;
    long rss = 0;
    Map<String, Long> arrow = new LinkedHashMap<>(); // per worker; -1 = not scraped
    for (FaultCluster.Node n : cluster.live()) {
      if (n.role().equals("prefill") || n.role().equals("decode")) { // only workers hold KV
        PrometheusText m = Scrape.metrics(metricsUrls.get(n.id));
        kv += Math.max(0, (long) Scrape.sum(m, "pdserve_kv_reserved_blocks", Map.of()));
        arrow.put(n.id, Scrape.arrowAllocatedBytes(m, n.id));
      }
      threads += Math.max(0, Scrape.procStatus(n.pid(), "Threads"));
      heap += Math.max(0, Scrape.heapAfterGcKb(n.pid()));
      rss += Math.max(0, Scrape.procStatus(n.pid(), "VmRSS"));
    }
    row.put("kv_reserved_blocks", kv);
    row.put("threads", threads);
    row.put("heap_after_gc_kb", heap);
    row.put("rss_kb", rss);
    row.put("arrow_allocated_bytes", arrow);
    return row;
  }

  static double pct(List<Double> sorted, double p) {
    if (sorted.isEmpty()) {
      return -1;
    }
    int i = (int) Math.ceil(p * sorted.size()) - 1;
    return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
  }
}
