package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeRole;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.NodeJvm;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.router.RouterOptions;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
    try (ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      clusterPort = s.getLocalPort();
    }
    List<String> cmd =
        workerCommand(
            "sigterm-0",
            "sigterm-" + ProcessHandle.current().pid(),
            "127.0.0.1:" + clusterPort,
            clusterPort,
            "5s");
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

  /** {@code pdserve worker --role decode} as a child JVM of this one, joining {@code members}. */
  static List<String> workerCommand(
      String nodeId, String clusterName, String members, int clusterPort, String shutdownTimeout) {
    // The JVM's default compilers and GC (not LocalCluster's many-JVM flags): the shutdown race
    // this class guards against showed with them.
    List<String> cmd = NodeJvm.javaWithThisJvmsModuleFlags();
    cmd.addAll(
        List.of(
            "-Xmx256m",
            "-Dpdserve.log.level=INFO",
            "-cp",
            System.getProperty("java.class.path"),
            "dev.pdserve.launcher.Main",
            "worker",
            "--role",
            "decode",
            "--node-id",
            nodeId,
            "--bind",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--flight-port",
            "0",
            "--metrics-port",
            "0",
            "--cluster-name",
            clusterName,
            "--cluster-port",
            Integer.toString(clusterPort),
            "--members",
            members,
            "--kv-budget",
            "64m",
            "--ort-threads",
            "1",
            "--set",
            "coordinator.enabled=false",
            "--shutdown-timeout",
            shutdownTimeout));
    return cmd;
  }

  @Test
  void sigtermWhileDecodingFinishesEverySequenceAndExitsZero(@TempDir Path tmp) throws Exception {
    // The only decode node, in its own JVM, decoding long streams when SIGTERM lands: the drain
    // computes for seconds (nowhere to move the sequences), which must not race the JVM's
    // shutdown (ONNX Runtime releases its native environment in a shutdown hook).
    int maxTokens = 700;
    try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared());
        InJvmCluster cluster = new InJvmCluster()) {
      cluster.addWorker("prefill", Map.of());
      cluster.startRouter(RouterOptions.defaults());
      int clusterPort;
      try (ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
        clusterPort = s.getLocalPort();
      }
      Path errFile = tmp.resolve("decode.err");
      Process p =
          new ProcessBuilder(
                  workerCommand(
                      "d-child", cluster.clusterName(), cluster.seed(), clusterPort, "30s"))
              .redirectError(errFile.toFile())
              .start();
      try {
        CompletableFuture<String> ready = new CompletableFuture<>();
        pump(
            p.getInputStream(),
            line -> {
              if (line.startsWith("PDSERVE-READY")) {
                ready.complete(line);
              }
            });
        ready.get(90, TimeUnit.SECONDS);
        cluster.awaitRouterSees(1, 1);
        List<String> prompts = new ArrayList<>();
        List<CompletableFuture<InJvmCluster.Result>> streams = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
          prompts.add("sigterm " + i + ": finish me");
          streams.add(
              ClusterBehaviourTest.async(
                  cluster.channel, Greedy.request("sig" + i, prompts.get(i), maxTokens)));
        }
        InJvmCluster.await(
            Duration.ofSeconds(60),
            () -> runningOn(cluster, "d-child") >= 12,
            "the child decoding every stream");

        p.destroy(); // SIGTERM, mid-generation
        for (int i = 0; i < streams.size(); i++) {
          InJvmCluster.Result got = streams.get(i).get(120, TimeUnit.SECONDS);
          assertArrayEquals(
              Greedy.referenceTokens(reference, prompts.get(i), maxTokens),
              got.tokenIds(),
              "sig" + i + " after SIGTERM; stderr:\n" + Files.readString(errFile));
        }
        assertTrue(p.waitFor(30 + 10 + 10, TimeUnit.SECONDS), "the worker did not exit");
        String log = Files.readString(errFile);
        assertEquals(0, p.exitValue(), "exit code; stderr:\n" + log);
        assertTrue(log.contains("drained: 12 finished, 0 migrated, 0 failed"), log);
      } finally {
        p.destroyForcibly();
      }
    }
  }

  /** Running sequences of node {@code id}, as the router's AdminService reports them. */
  private static int runningOn(InJvmCluster cluster, String id) {
    return AdminServiceGrpc.newBlockingStub(cluster.channel)
        .listNodes(ListNodesRequest.getDefaultInstance())
        .getNodesList()
        .stream()
        .filter(n -> n.getId().equals(id))
        .mapToInt(NodeStatus::getRunningSequences)
        .sum();
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
              } catch (IOException e) {
                // the process ended
              }
            },
            "sigterm-test-pump");
    t.setDaemon(true);
    t.start();
    return t;
  }
}
