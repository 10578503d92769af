package dev.pdserve.launcher.faults;

import dev.pdserve.launcher.metrics.PrometheusText;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Reads what the suite measures from outside the processes: metrics endpoints, /proc, jcmd. */
final class Scrape {
  private static final HttpClient HTTP =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();

  private Scrape() {}

  /** A node's Prometheus text, parsed, or null when it does not answer. */
  static PrometheusText metrics(String url) {
    if (url == null || url.isEmpty()) {
      return null;
    }
    try {
      String u = url.endsWith("/metrics") ? url : url + "/metrics";
      HttpResponse<String> r =
          HTTP.send(
              HttpRequest.newBuilder(URI.create(u)).timeout(Duration.ofSeconds(5)).build(),
              HttpResponse.BodyHandlers.ofString());
      return r.statusCode() == 200 ? PrometheusText.parse(r.body()) : null;
    } catch (IOException | RuntimeException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  /** Sum of samples {@code name} with {@code labels}, 0 when absent, -1 when not scraped. */
  static double sum(PrometheusText m, String name, Map<String, String> labels) {
    if (m == null) {
      return -1;
    }
    try {
      return m.sum(name, labels);
    } catch (RuntimeException e) {
      return 0;
    }
  }

  /**
   * A worker's Arrow bytes held now: its own allocator's {@code pdserve_arrow_allocated_bytes}
   * series ({@code allocator="worker-<node id>"}, the total of its KV pool and Flight buffers); -1
   * when not scraped or absent.
   */
  static long arrowAllocatedBytes(PrometheusText m, String nodeId) {
    if (m == null) {
      return -1;
    }
    try {
      return (long) m.sum("pdserve_arrow_allocated_bytes", Map.of("allocator", "worker-" + nodeId));
    } catch (RuntimeException | AssertionError e) { // PrometheusText says "absent" with an error
      return -1;
    }
  }

  /** A {@code /proc/PID/status} field in kB (VmRSS) or as a count (Threads); -1 if unreadable. */
  static long procStatus(long pid, String field) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
        if (line.startsWith(field + ":")) {
          return Long.parseLong(line.substring(field.length() + 1).trim().split("\\s+")[0]);
        }
      }
    } catch (IOException | RuntimeException e) {
      // gone
    }
    return -1;
  }

  /** Heap used after a full GC in kB ({@code jcmd PID GC.run}, then {@code GC.heap_info}). */
  static long heapAfterGcKb(long pid) {
    try {
      run("jcmd", Long.toString(pid), "GC.run");
      String info = run("jcmd", Long.toString(pid), "GC.heap_info");
      long used = 0;
      for (String line : info.split("\n")) {
        int at = line.indexOf(" used ");
        if (line.contains("total") && at >= 0) {
          String v = line.substring(at + 6).trim().split("[\\s,]+")[0];
          used += Long.parseLong(v.replace("K", ""));
        }
      }
      return used;
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }

  static String run(String... cmd) throws IOException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    try {
      String out = new String(p.getInputStream().readAllBytes());
      p.waitFor(60, TimeUnit.SECONDS);
      return out;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted");
    }
  }

  /** Sends {@code signal} (KILL, TERM, STOP, CONT) to {@code pid}. */
  static void signal(long pid, String signal) {
    try {
      run("kill", "-" + signal, Long.toString(pid));
    } catch (IOException e) {
      throw new IllegalStateException("kill -" + signal + " " + pid + " failed", e);
    }
  }
}
