package dev.pdserve.launcher.k8s;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.NodeJvm;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Deque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Starts one process per pod of the rendered {@code dev} overlay, each the way its pod would start:
 * the container's arguments, the ConfigMap's values through envFrom and the container's env entries
 * (downward-API fields filled with the pod's name, IP and namespace). Each pod gets its own
 * loopback address as its pod IP (a block whose manifest ports are free: see {@link
 * #freePodAddresses}), and the headless Service's DNS name resolves to every pod IP (a hosts file
 * for the JVM's resolver, as cluster DNS would with publishNotReadyAddresses). The one change a pod
 * would not see: each binds its pod IP instead of 0.0.0.0, since here the pods share one network
 * namespace. Then the kubelet's view: every probe's grpc.health.v1 service answers SERVING on the
 * probe's port; and the client's view: a request through the router Service's ports is answered
 * with the reference engine's tokens.
 */
class DevOverlayClusterTest {
  record Pod(Workload workload, String name, String ip, Map<String, String> env) {}

  @Test
  void podsOfTheDevOverlayFormAClusterThatAnswers(@TempDir Path tmp) throws Exception {
    List<JsonNode> rendered = Kustomize.render(Kustomize.K8S.resolve("overlays/dev"));
    List<String> problems = new ArrayList<>();
    List<Pod> pods = new ArrayList<>();
    // Expert shards first (workers in remote-experts mode wait for them to cover every expert),
    // then the workers, then the router: the order pods become ready in a real cluster too.
    List<Workload> workloads = new ArrayList<>(Workload.all(rendered));
    workloads.sort(Comparator.comparingInt(DevOverlayClusterTest::wave));
    List<Collection<Integer>> podPorts = new ArrayList<>();
    for (Workload w : workloads) {
      for (int i = 0; i < w.replicas(); i++) {
        podPorts.add(w.ports().values());
      }
    }
    List<String> ips = freePodAddresses(podPorts);
    int next = 0;
    for (Workload w : workloads) {
      for (int i = 0; i < w.replicas(); i++) {
        String ip = ips.get(next++);
        Map<String, String> env = new LinkedHashMap<>(w.environment(w.podName(i), ip, problems));
        env.put(NodeConfigLoader.environmentVariable(NodeConfigLoader.BIND_HOST), ip);
        pods.add(new Pod(w, w.podName(i), ip, env));
      }
    }
    assertEquals(List.of(), problems);
    assertEquals(5, pods.size(), "dev: 1 router, 1 prefill, 1 decode, 2 expert shards");

    // Cluster DNS: the headless Service's name resolves to every pdserve pod's IP.
    NodeConfig routerConfig = config(pods.get(pods.size() - 1));
    String serviceDns = routerConfig.cluster().kubernetesServiceDns();
    Path hosts = tmp.resolve("hosts");
    Files.writeString(
        hosts,
        "127.0.0.1 localhost\n"
            // the machine's own name too: with a hosts file, the JVM resolves nothing else
            + "127.0.0.1 "
            + InetAddress.getLocalHost().getHostName()
            + "\n"
            + pods.stream()
                .map(p -> p.ip() + " " + serviceDns + "\n")
                .collect(Collectors.joining()));

    List<Process> processes = new ArrayList<>();
    List<Deque<String>> outputs = new ArrayList<>();
    try (LoadedModel model =
            LoadedModel.load(
                ModelSpec.preset(
                    routerConfig.engine().modelPreset(), routerConfig.engine().modelSeed()));
        ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared())) {
      try {
        List<CompletableFuture<Void>> waiting = new ArrayList<>();
        List<Pod> waitingPods = new ArrayList<>();
        for (int i = 0; i < pods.size(); i++) {
          Pod p = pods.get(i);
          List<String> cmd = new ArrayList<>(NodeJvm.nodeJavaCommand("384m", "WARN"));
          cmd.add(cmd.size() - 3, "-Djdk.net.hosts.file=" + hosts);
          cmd.addAll(p.workload().args());
          ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
          pb.environment().keySet().removeIf(k -> k.startsWith("PDSERVE_"));
          pb.environment().putAll(p.env());
          Process proc = pb.start();
          processes.add(proc);
          Deque<String> out = new ConcurrentLinkedDeque<>();
          outputs.add(out);
          CompletableFuture<Void> ready = new CompletableFuture<>();
          pump(proc, out, ready, p.name());
          waiting.add(ready);
          waitingPods.add(p);
          // One wave (a StatefulSet, the router) at a time, its pods together.
          if (i == pods.size() - 1 || wave(pods.get(i + 1).workload()) != wave(p.workload())) {
            for (int k = 0; k < waiting.size(); k++) {
              await(waiting.get(k), waitingPods.get(k), out);
            }
            waiting.clear();
            waitingPods.clear();
          }
        }
        // The kubelet's probes: each asks its port for its service, and gets SERVING.
        for (Pod p : pods) {
          JsonNode c = p.workload().container();
          for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
            JsonNode grpc = c.path(probe).path("grpc");
            awaitServing(
                p.ip(),
                grpc.path("port").asInt(),
                grpc.path("service").asText(""),
                p.name() + " " + probe);
          }
        }
        // The router Service: its gRPC and HTTP ports lead to the router pod's container ports.
        JsonNode service = Manifests.find(rendered, "Service", "pdserve-router");
        Pod router =
            pods.stream()
                .filter(
                    p ->
                        Manifests.matches(
                            service.path("spec").path("selector"), p.workload().podLabels()))
                .findFirst()
                .orElseThrow();
        int grpcPort = targetPort(service, "grpc", router);
        int httpPort = targetPort(service, "http", router);
        ManagedChannel ch =
            NettyChannelBuilder.forAddress(router.ip(), grpcPort).usePlaintext().build();
        try {
          // One Hazelcast cluster: the router sees every pod, ACTIVE, under its pod name.
          Set<String> expected = pods.stream().map(Pod::name).collect(Collectors.toSet());
          awaitMembers(ch, expected);
          String prompt = "Kubernetes pods answer through the router";
          dev.pdserve.api.v1.GenerateRequest req =
              dev.pdserve.api.v1.GenerateRequest.newBuilder()
                  .setRequestId("k8s-dev-1")
                  .setPrompt(prompt)
                  .setParams(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(10))
                  .build();
          List<Integer> ids = new ArrayList<>();
          boolean completed = false;
          Iterator<GenerateResponse> it =
              GenerationGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(60, TimeUnit.SECONDS)
                  .generate(req);
          while (it.hasNext()) {
            GenerateResponse g = it.next();
            if (g.hasDelta()) {
              ids.addAll(g.getDelta().getTokenIdsList());
            } else if (g.hasCompletion()) {
              completed = true;
            }
          }
          assertTrue(completed, "the stream ends with a completion");
          int[] want =
              reference
                  .generate(
                      new GenerateRequest(
                          "k8s-dev-1",
                          new Prompt.Text(prompt),
                          ProtoConversions.sampling(req.getParams()),
                          true))
                  .tokenIds();
          assertArrayEquals(
              want,
              ids.stream().mapToInt(Integer::intValue).toArray(),
              "tokens equal the reference engine's");

          HttpResponse<String> http =
              HttpClient.newHttpClient()
                  .send(
                      HttpRequest.newBuilder(
                              URI.create(
                                  "http://" + router.ip() + ":" + httpPort + "/v1/completions"))
                          .timeout(Duration.ofSeconds(60))
                          .header("Content-Type", "application/json")
                          .POST(
                              HttpRequest.BodyPublishers.ofString(
                                  "{\"prompt\": \""
                                      + prompt
                                      + "\", \"max_tokens\": 4, \"temperature\": 0}"))
                          .build(),
                      HttpResponse.BodyHandlers.ofString());
          assertEquals(200, http.statusCode(), http.body());
          JsonNode body = Kustomize.YAML.readTree(http.body());
          assertEquals(4, body.path("usage").path("completion_tokens").asInt(), http.body());
        } finally {
          ch.shutdownNow();
        }
        // SIGTERM, as the kubelet sends when a pod is deleted (router first, as in a scale-down
        // of everything): each drains and exits 0 within its pod's terminationGracePeriodSeconds.
        for (int i = processes.size() - 1; i >= 0; i--) {
          Process proc = processes.get(i);
          Pod p = pods.get(i);
          long grace = p.workload().podSpec().path("terminationGracePeriodSeconds").asLong(30);
          proc.destroy();
          assertTrue(
              proc.waitFor(grace, TimeUnit.SECONDS),
              p.name() + " did not exit within its grace period of " + grace + " s");
          assertEquals(0, proc.exitValue(), p.name() + " exit code after SIGTERM");
        }
      } catch (AssertionError | Exception e) {
        StringBuilder sb =
            new StringBuilder(e.getMessage() == null ? e.toString() : e.getMessage());
        for (int i = 0; i < outputs.size(); i++) {
          sb.append("\n--- ").append(pods.get(i).name()).append(" (last lines):\n");
          outputs.get(i).forEach(l -> sb.append(l).append('\n'));
        }
        throw new AssertionError(sb.toString(), e);
      } finally {
        for (Process p : processes) {
          p.destroy(); // SIGTERM, as the kubelet sends
        }
        for (Process p : processes) {
          if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
          }
        }
      }
    }
  }

  /**
   * Pod IPs: {@code 127.A.B.10}, {@code .11}, ... for the pods in order, from the first block on
   * which every pod's container ports are free. A.B comes from this JVM's pid, so two runs at once
   * (other worktrees, other builds) start on different blocks; a block where anything already
   * listens on one of those ports (on that address or on all addresses) is skipped. The ports stay
   * the manifests': only the addresses are the test's.
   */
  private static List<String> freePodAddresses(List<Collection<Integer>> portsPerPod) {
    long pid = ProcessHandle.current().pid();
    List<String> busy = new ArrayList<>();
    for (long block = pid; block < pid + 32; block++) {
      String prefix = "127." + (1 + (block >> 8) % 254) + "." + (block & 0xff) + ".";
      List<String> ips = new ArrayList<>();
      for (int i = 0; i < portsPerPod.size(); i++) {
        String ip = prefix + (10 + i);
        Optional<Integer> taken = portsPerPod.get(i).stream().filter(p -> !free(ip, p)).findFirst();
        if (taken.isPresent()) {
          busy.add(ip + ":" + taken.get());
          break;
        }
        ips.add(ip);
      }
      if (ips.size() == portsPerPod.size()) {
        return ips;
      }
    }
    throw new AssertionError(
        "no block of loopback addresses with the manifests' ports free; in use: " + busy);
  }

  private static boolean free(String ip, int port) {
    try (ServerSocket s = new ServerSocket()) {
      s.bind(new InetSocketAddress(ip, port));
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Start order: expert shards, workers, router. */
  private static int wave(Workload w) {
    List<String> args = w.args();
    return switch (args.get(0)) {
      case "expert" -> 0;
      case "worker" -> 1;
      default -> 2;
    };
  }

  private static NodeConfig config(Pod p) {
    return NodeConfigLoader.load(
        Optional.empty(),
        p.env(),
        Map.of(NodeConfigLoader.ROLE, p.workload().role(p.env()).name()));
  }

  private static int targetPort(JsonNode service, String name, Pod pod) {
    for (JsonNode port : service.path("spec").path("ports")) {
      if (port.path("name").asText().equals(name)) {
        Integer p = pod.workload().ports().get(port.path("targetPort").asText());
        assertNotNull(p, "Service port " + name + " targets a port the router container lacks");
        return p;
      }
    }
    throw new AssertionError("the router Service has no port " + name);
  }

  private static void pump(
      Process proc, Deque<String> out, CompletableFuture<Void> ready, String name) {
    Thread t =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(
                      new InputStreamReader(proc.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  out.add(line);
                  while (out.size() > 40) {
                    out.poll();
                  }
                  if (line.startsWith("PDSERVE-READY")) {
                    ready.complete(null);
                  }
                }
              } catch (IOException e) {
                // the process ended
              }
              ready.completeExceptionally(new AssertionError(name + " exited before it was ready"));
            },
            "pod-" + name);
    t.setDaemon(true);
    t.start();
  }

  private static void await(CompletableFuture<Void> ready, Pod p, Deque<String> out)
      throws Exception {
    try {
      ready.get(180, TimeUnit.SECONDS);
    } catch (ExecutionException | TimeoutException e) {
      throw new AssertionError(
          p.name() + " did not start: " + e + "\n" + String.join("\n", out), e);
    }
  }

  private static void awaitServing(String host, int port, String service, String what)
      throws InterruptedException {
    ManagedChannel ch = NettyChannelBuilder.forAddress(host, port).usePlaintext().build();
    try {
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      String last = "no answer";
      while (System.nanoTime() < deadline) {
        try {
          ServingStatus s =
              HealthGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(5, TimeUnit.SECONDS)
                  .check(HealthCheckRequest.newBuilder().setService(service).build())
                  .getStatus();
          if (s == ServingStatus.SERVING) {
            return;
          }
          last = s.toString();
        } catch (StatusRuntimeException e) {
          last = e.getStatus().toString();
        }
        Thread.sleep(200);
      }
      throw new AssertionError(
          what + ": health service '" + service + "' on " + host + ":" + port + " is " + last);
    } finally {
      ch.shutdownNow();
    }
  }

  private static void awaitMembers(ManagedChannel ch, Set<String> expected)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    List<NodeStatus> nodes = List.of();
    while (System.nanoTime() < deadline) {
      try {
        nodes =
            AdminServiceGrpc.newBlockingStub(ch)
                .withDeadlineAfter(5, TimeUnit.SECONDS)
                .listNodes(ListNodesRequest.getDefaultInstance())
                .getNodesList();
        Set<String> active =
            nodes.stream()
                .filter(n -> n.getState().equals("ACTIVE"))
                .map(NodeStatus::getId)
                .collect(Collectors.toSet());
        if (active.equals(expected)) {
          return;
        }
      } catch (StatusRuntimeException e) {
        // not answering yet
      }
      Thread.sleep(200);
    }
    throw new AssertionError(
        "the router sees "
            + nodes.stream().map(n -> n.getId() + "=" + n.getState()).toList()
            + ", expected "
            + expected);
  }
}
