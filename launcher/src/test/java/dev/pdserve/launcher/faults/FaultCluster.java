package dev.pdserve.launcher.faults;

import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.LocalChild;
import dev.pdserve.launcher.node.LocalCluster;
import dev.pdserve.launcher.node.NodeJvm;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The fault suite's cluster: every node its own {@code pdserve} JVM on loopback (the command {@link
 * LocalCluster#nodeJavaCommand} builds), started in the order {@code pdserve local} uses (expert
 * shards, decode, prefill, the router last). Unlike {@code pdserve local} it can give an expert
 * range to more than one shard (replicas), put one node behind a {@link LinkProxy} (the node
 * advertises 127.0.0.2 and the proxy relays 127.0.0.2:P to 127.0.0.1:P for each of its ports), and
 * replace a node that a fault took down by a fresh one with a new id.
 */
final class FaultCluster implements AutoCloseable {
  /** One node to start: {@code experts} is a range for role expert, null otherwise. */
  record NodeDef(String id, String role, String experts, boolean proxied) {}

  /** What to start and with what model. */
  record Spec(
      List<NodeDef> nodes,
      String preset,
      long seed,
      String kvBudget,
      String heap,
      Map<String, String> settings) {}

  /** A started node process. */
  static final class Node {
    final NodeDef def;
    final String id;
    final Process process;
    final CompletableFuture<String> ready = new CompletableFuture<>();
    volatile String grpc;

    Node(NodeDef def, String id, Process process) {
      this.def = def;
      this.id = id;
      this.process = process;
    }

    String role() {
      return def.role();
    }

    long pid() {
      return process.pid();
    }
  }

  static final String PROXY_HOST = "127.0.0.2";

  private final Spec spec;
  private final Path logDir;
  private final PrintStream log;
  private final String clusterName =
      "pdserve-faults-" + UUID.randomUUID().toString().substring(0, 8);
  private final Map<String, Integer> clusterPorts = new LinkedHashMap<>();
  private final Map<String, int[]> fixedPorts = new LinkedHashMap<>(); // grpc, flight, metrics
  private final Map<String, Integer> generations = new LinkedHashMap<>();
  private final List<Node> live = new ArrayList<>();
  private final List<LinkProxy> grpcProxies = new ArrayList<>();
  private final List<LinkProxy> otherProxies = new ArrayList<>();
  private String members;
  private ManagedChannel channel;
  private boolean freshClusterPorts;

  FaultCluster(Spec spec, Path logDir, PrintStream log) throws IOException {
    this.spec = spec;
    this.logDir = logDir;
    this.log = log;
    Files.createDirectories(logDir);
  }

  /**
   * Whether a replacement (other than the proxied node's) gets a fresh Hazelcast port instead of
   * the one of the node it replaces, so that no address ever names two members.
   */
  FaultCluster freshClusterPorts(boolean fresh) {
    this.freshClusterPorts = fresh;
    return this;
  }

  /** Starts every node and waits until the router lists them all ACTIVE. */
  void start(Duration timeout) throws IOException, TimeoutException {
    List<NodeDef> defs = spec.nodes();
    int[] ports = NodeJvm.freeLoopbackPorts(defs.size());
    StringBuilder m = new StringBuilder();
    for (int i = 0; i < defs.size(); i++) {
      NodeDef d = defs.get(i);
      clusterPorts.put(d.id(), ports[i]);
      m.append(m.length() == 0 ? "" : ",")
          .append(d.proxied() ? PROXY_HOST : "127.0.0.1")
          .append(':')
          .append(ports[i]);
      if (d.proxied()) {
        int[] p = NodeJvm.freeLoopbackPorts(3);
        fixedPorts.put(d.id(), p);
        grpcProxies.add(proxy(p[0]));
        otherProxies.add(proxy(p[1]));
        otherProxies.add(proxy(p[2]));
        otherProxies.add(proxy(ports[i]));
      }
    }
    members = m.toString();
    long deadline = System.nanoTime() + timeout.toNanos();
    // the first node seeds the Hazelcast cluster; then two at a time; the router last
    List<Node> wave = new ArrayList<>();
    for (int i = 0; i < defs.size(); i++) {
      wave.add(spawn(defs.get(i)));
      if (i == 0 || wave.size() == 2 || i == defs.size() - 2 || i == defs.size() - 1) {
        for (Node n : wave) {
          awaitReady(n, deadline);
        }
        wave.clear();
      }
    }
    channel = NettyChannelBuilder.forTarget(router().grpc).usePlaintext().build();
    awaitAllActive(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
  }

  private static LinkProxy proxy(int port) throws IOException {
    return new LinkProxy(
        new InetSocketAddress(PROXY_HOST, port), new InetSocketAddress("127.0.0.1", port));
  }

  ManagedChannel channel() {
    return channel;
  }

  Node router() {
    return live.stream().filter(n -> n.role().equals("router")).findFirst().orElseThrow();
  }

  List<Node> live() {
    return List.copyOf(live);
  }

  Node node(String defId) {
    return live.stream().filter(n -> n.def.id().equals(defId)).findFirst().orElseThrow();
  }

  /** Cuts (true) or heals (false) the gRPC link of the proxied node. */
  void cutGrpcLink(boolean cut) {
    for (LinkProxy p : grpcProxies) {
      if (cut) {
        p.cut();
      } else {
        p.heal();
      }
    }
  }

  /** The router's view of the cluster. */
  List<NodeStatus> listNodes() {
    return AdminServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(5, TimeUnit.SECONDS)
        .listNodes(ListNodesRequest.getDefaultInstance())
        .getNodesList();
  }

  /** Waits until the router lists every live node ACTIVE. */
  void awaitAllActive(Duration timeout) throws TimeoutException {
    long deadline = System.nanoTime() + timeout.toNanos();
    List<NodeStatus> last = List.of();
    while (System.nanoTime() < deadline) {
      try {
        last = listNodes();
        List<String> active =
            last.stream()
                .filter(n -> n.getState().equals("ACTIVE"))
                .map(NodeStatus::getId)
                .toList();
        if (live.stream().allMatch(n -> active.contains(n.id))) {
          return;
        }
      } catch (RuntimeException e) {
        // the router may not answer yet
      }
      sleep(200);
    }
    throw new TimeoutException(
        "not every node is ACTIVE; the router sees "
            + last.stream().map(n -> n.getId() + "=" + n.getState()).toList()
            + ", expected "
            + live.stream().map(n -> n.id).toList());
  }

  /**
   * Replaces the node started from {@code defId} (killed if still running) by a fresh process of
   * the same definition under a new id, and waits until it is ready and ACTIVE.
   */
  Node replace(String defId, Duration timeout) throws IOException, TimeoutException {
    Node old = node(defId);
    live.remove(old);
    old.process.destroyForcibly();
    try {
      old.process.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (freshClusterPorts && !old.def.proxied()) {
      int port = NodeJvm.freeLoopbackPorts(1)[0];
      clusterPorts.put(defId, port);
      members = members + ",127.0.0.1:" + port;
      log.println("  " + defId + " moves to cluster port " + port);
    }
    Node n = spawn(old.def);
    long deadline = System.nanoTime() + timeout.toNanos();
    awaitReady(n, deadline);
    awaitAllActive(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
    return n;
  }

  private Node spawn(NodeDef d) throws IOException {
    int gen = generations.merge(d.id(), 1, Integer::sum);
    String id = gen == 1 ? d.id() : d.id() + "-r" + (gen - 1);
    List<String> cmd = new ArrayList<>(NodeJvm.nodeJavaCommand(spec.heap(), "WARN"));
    switch (d.role()) {
      case "expert" -> cmd.addAll(List.of("expert", "--experts", d.experts()));
      case "prefill", "decode" ->
          cmd.addAll(
              List.of(
                  "worker",
                  "--role",
                  d.role(),
                  "--experts-mode",
                  spec.nodes().stream().anyMatch(x -> x.role().equals("expert"))
                      ? "remote"
                      : "local",
                  "--kv-budget",
                  spec.kvBudget()));
      default -> cmd.add("router");
    }
    int[] fixed = fixedPorts.getOrDefault(d.id(), new int[] {0, 0, 0});
    cmd.addAll(
        List.of(
            "--node-id",
            id,
            "--bind",
            "127.0.0.1",
            "--grpc-port",
            Integer.toString(fixed[0]),
            "--flight-port",
            Integer.toString(fixed[1]),
            "--metrics-port",
            Integer.toString(fixed[2]),
            "--cluster-name",
            clusterName,
            "--cluster-port",
            Integer.toString(clusterPorts.get(d.id())),
            "--members",
            members,
            "--seed-weights",
            Long.toString(spec.seed()),
            "--preset",
            spec.preset(),
            "--ort-threads",
            "1",
            "--shutdown-timeout",
            "10s"));
    if (d.proxied()) {
      cmd.addAll(List.of("--advertise", PROXY_HOST));
    }
    for (Map.Entry<String, String> e : spec.settings().entrySet()) {
      cmd.add("--set");
      cmd.add(e.getKey() + "=" + e.getValue());
    }
    Process p = new ProcessBuilder(cmd).start();
    Node n = new Node(d, id, p);
    live.add(n);
    PrintStream file =
        new PrintStream(
            Files.newOutputStream(logDir.resolve(id + ".log")), true, StandardCharsets.UTF_8);
    pump(n, p.getInputStream(), file, true);
    pump(n, p.getErrorStream(), file, false);
    return n;
  }

  private void awaitReady(Node n, long deadline) throws IOException, TimeoutException {
    try {
      String line = n.ready.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
      n.grpc = LocalChild.readyField(line, "grpc");
      log.println("  started " + n.id + " (" + n.role() + ", pid " + n.pid() + ")");
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IOException(
          "node " + n.id + " failed to start; see " + logDir.resolve(n.id + ".log"));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted");
    }
  }

  private static void pump(Node n, InputStream in, PrintStream file, boolean stdout) {
    Thread t =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  file.println(line);
                  if (stdout && line.startsWith("PDSERVE-READY")) {
                    n.ready.complete(line);
                  }
                }
              } catch (IOException e) {
                // the process ended
              }
              if (stdout) {
                n.ready.completeExceptionally(new IOException("exited"));
              }
            },
            "faults-" + n.id + (stdout ? "-out" : "-err"));
    t.setDaemon(true);
    t.start();
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted", e);
    }
  }

  @Override
  public void close() {
    if (channel != null) {
      channel.shutdownNow();
    }
    for (Node n : live) {
      n.process.destroy();
    }
    for (Node n : live) {
      try {
        if (!n.process.waitFor(15, TimeUnit.SECONDS)) {
          n.process.destroyForcibly();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        n.process.destroyForcibly();
      }
    }
    for (LinkProxy p : grpcProxies) {
      p.close();
    }
    for (LinkProxy p : otherProxies) {
      p.close();
    }
  }
}
