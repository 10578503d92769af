package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What Kubernetes does to a pod, on a real process: {@code pdserve worker} started through the CLI
 * in its own JVM, ready and {@code pdserve.worker} SERVING, then SIGTERM ({@link
 * Process#destroy()}) — it drains, logs the drain's start and end lines, and exits with 0 within
 * its shutdown timeout (plus the closing slack).
 */
class WorkerSigtermProcessTest {

  @Test
  void sigtermDrainsTheWorkerAndExitsZero(@TempDir Path tmp) throws Exception {
    int clusterPort;
    try (ServerSocket s = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
      clusterPort = s.getLocalPort();
    }
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-") || a.startsWith("-Djava.util.logging.manager")) {
        cmd.add(a);
      }
    }
    cmd.addAll(
        List.of(
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Dpdserve.log.level=INFO",
            "-cp",
            System.getProperty("java.class.path"),
            "dev.pdserve.launcher.Main",
            "worker",
            "--role",
            "decode",
            "--node-id",
            "sigterm-0",
            "--bind",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--flight-port",
            "0",
            "--metrics-port",
            "0",
            "--cluster-name",
            "sigterm-" + ProcessHandle.current().pid(),
            "--cluster-port",
            Integer.toString(clusterPort),
            "--members",
            "127.0.0.1:" + clusterPort,
            "--kv-budget",
            "8m",
            "--ort-threads",
            "1",
            "--set",
            "coordinator.enabled=false",
            "--shutdown-timeout",
            "5s"));
    // stderr to a file: Process.destroy() closes this side's pipes, and the drain logs after it.
    Path errFile = tmp.resolve("worker.err");
    Process p = new ProcessBuilder(cmd).redirectError(errFile.toFile()).start();
    CompletableFuture<String> ready = new CompletableFuture<>();
    pump(
        p.getInputStream(),
        line -> {
          if (line.startsWith("PDSERVE-READY")) {
            ready.complete(line);
          }
        });
    try {
      String line = ready.get(90, TimeUnit.SECONDS);
      String grpc = line.replaceAll(".* grpc=(\\S+).*", "$1");
      assertEquals(
          ServingStatus.SERVING,
          GracefulDrainTest.health(grpc, NodeRole.WORKER_HEALTH_SERVICE),
          "a started worker is ready");

      p.destroy(); // SIGTERM
      // the 5 s timeout, the 10 s closing slack after which the process halts itself, a margin
      boolean exited = p.waitFor(5 + 10 + 10, TimeUnit.SECONDS);
      String log = Files.readString(errFile);
      assertTrue(exited, "the worker did not exit within its shutdown timeout; stderr:\n" + log);
      assertEquals(0, p.exitValue(), "exit code after a clean drain; stderr:\n" + log);
      assertTrue(
          log.contains(
              "draining: 0 running, 0 queued, timeout 5000 ms (worker sigterm-0, role decode)"),
          "the drain's first line:\n" + log);
      assertTrue(
          log.contains("drained: 0 finished, 0 migrated, 0 failed, elapsed "),
          "the drain's last line:\n" + log);
    } finally {
      p.destroyForcibly();
    }
  }

  private static Thread pump(InputStream in, Consumer<String> lines) {
    Thread t =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  lines.accept(line);
                }
              } catch (java.io.IOException e) {
                // the process ended
              }
            },
            "sigterm-test-pump");
    t.setDaemon(true);
    t.start();
    return t;
  }
}
