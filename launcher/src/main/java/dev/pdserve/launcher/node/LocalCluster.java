package dev.pdserve.launcher.node;

import com.google.common.base.Ticker;
import dev.pdserve.core.auth.GrpcAuth;
import dev.pdserve.core.auth.SecretFile;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * A local cluster of OS processes on loopback: a router, prefill and decode workers, and expert
 * shards, each its own JVM running {@code pdserve <role>} with the same classpath as this one.
 * Ready once every node is ACTIVE in the router's view; {@link #close()} stops every process it
 * started (SIGTERM, then a kill after a grace period).
 */
public final class LocalCluster implements AutoCloseable {
  /** What to start. {@code experts} 0 = every worker computes all experts itself. */
  public record Spec(
      int prefill,
      int decode,
      int experts,
      String preset,
      String modelDir,
      long seed,
      String kvBudget,
      String logLevel,
      Map<String, String> settings,
      String heap) {
    public Spec {
      if (prefill < 1 || decode < 1 || experts < 0) {
        throw new IllegalArgumentException(
            "a local cluster needs --prefill >= 1, --decode >= 1 and --experts >= 0");
      }
      if (experts > 64) {
        throw new IllegalArgumentException(
            "--experts must be at most 64 (one expert index per shard at least), got " + experts);
      }
      settings = Map.copyOf(settings);
    }

    public static Spec of(int prefill, int decode, int experts) {
      return new Spec(prefill, decode, experts, "tiny", null, 42, "256m", "WARN", Map.of(), "768m");
    }
  }

  /** One started process. */
  public static final class Child {
    final String id;
    final String role;
    final Process process;
    final List<String> command;
    final CompletableFuture<String> ready = new CompletableFuture<>();
    final Deque<String> tail = new ArrayDeque<>();

    Child(String id, String role, Process process, List<String> command) {
      this.id = id;
      this.role = role;
      this.process = process;
      this.command = List.copyOf(command);
    }

    public String id() {
      return id;
    }

    public Process process() {
      return process;
    }

    synchronized void remember(String line) {
      tail.addLast(line);
      if (tail.size() > 30) {
        tail.removeFirst();
      }
    }

    synchronized String lastLines() {
      return String.join("\n", tail);
    }
  }

  /** How long each child drains on SIGTERM: less than the 15 s {@link #close()} waits. */
  public static final Duration LOCAL_SHUTDOWN_TIMEOUT = Duration.ofSeconds(10);

  private final List<Child> children = new ArrayList<>();
  private final Consumer<String> log;
  private String routerAddress;
  private String routerHttpUrl;
  private boolean routerTls; // the router's public API is HTTPS
  private volatile boolean closing;

  private LocalCluster(Consumer<String> log) {
    this.log = log;
  }

  public static LocalCluster start(Spec spec, Consumer<String> log, Duration timeout)
      throws IOException, TimeoutException {
    LocalCluster c = new LocalCluster(log);
    try {
      c.launch(spec, timeout);
      return c;
    } catch (IOException | TimeoutException | RuntimeException e) {
      c.close();
      throw e;
    }
  }

  public String routerAddress() {
    return routerAddress;
  }

  /** The router's OpenAI-compatible HTTP base URL, {@code http://host:port}. */
  public String routerHttpUrl() {
    return routerHttpUrl;
  }

  /** Every node as the router listed it once all were ACTIVE (addresses, metrics URLs). */
  public List<NodeStatus> nodes() {
    return nodes;
  }

  public List<Child> children() {
    return List.copyOf(children);
  }

  /** Completes when any child exits while the cluster is not closing. */
  public CompletableFuture<Child> anyExit() {
    CompletableFuture<Child> f = new CompletableFuture<>();
    for (Child c : children) {
      c.process
          .onExit()
          .thenRun(
              () -> {
                if (!closing) {
                  f.complete(c);
                }
              });
    }
    return f;
  }

  private void launch(Spec spec, Duration timeout) throws IOException, TimeoutException {
    String cluster = "pdserve-local-" + UUID.randomUUID().toString().substring(0, 8);
    List<String[]> nodes = new ArrayList<>(); // {id, role}
    for (int i = 0; i < spec.experts(); i++) {
      nodes.add(new String[] {"e" + i, "expert"});
    }
    for (int i = 0; i < spec.decode(); i++) {
      nodes.add(new String[] {"d" + i, "decode"});
    }
    for (int i = 0; i < spec.prefill(); i++) {
      nodes.add(new String[] {"p" + i, "prefill"});
    }
    nodes.add(new String[] {"router", "router"});
    int[] ports = freePorts(nodes.size());
    StringBuilder members = new StringBuilder();
    for (int p : ports) {
      members.append(members.length() == 0 ? "" : ",").append("127.0.0.1:").append(p);
    }
    List<List<String>> commands = new ArrayList<>();
    for (int i = 0; i < nodes.size(); i++) {
      String id = nodes.get(i)[0];
      String role = nodes.get(i)[1];
      List<String> cmd = javaCommand(spec);
      switch (role) {
        case "expert" -> {
          cmd.add("expert");
          int per = 64 / spec.experts();
          int first = i * per;
          int last = i == spec.experts() - 1 ? 63 : first + per - 1;
          cmd.add("--experts");
          cmd.add(first + "-" + last);
        }
        case "prefill", "decode" -> {
          cmd.add("worker");
          cmd.add("--role");
          cmd.add(role);
          cmd.add("--experts-mode");
          cmd.add(spec.experts() > 0 ? "remote" : "local");
          cmd.add("--kv-budget");
          cmd.add(spec.kvBudget());
        }
        default -> cmd.add("router");
      }
      cmd.addAll(
          List.of(
              "--node-id",
              id,
              "--bind",
              "127.0.0.1",
              "--grpc-port",
              "0",
              "--flight-port",
              "0",
              "--metrics-port",
              "0",
              "--cluster-name",
              cluster,
              "--cluster-port",
              Integer.toString(ports[i]),
              "--members",
              members.toString(),
              "--seed-weights",
              Long.toString(spec.seed())));
      if (spec.modelDir() != null) {
        cmd.add("--model");
        cmd.add(spec.modelDir());
      } else {
        cmd.add("--preset");
        cmd.add(spec.preset());
      }
      if (!spec.settings().containsKey("pdserve.ort.threads")
          && !spec.settings().containsKey("ort.threads")) {
        // the nodes share this machine's cores: split them instead of every node taking all
        int compute = spec.prefill() + spec.decode() + spec.experts();
        cmd.add("--ort-threads");
        cmd.add(
            Integer.toString(Math.max(1, Runtime.getRuntime().availableProcessors() / compute)));
      }
      if (!spec.settings().containsKey("pdserve.shutdown.timeout-seconds")
          && !spec.settings().containsKey("shutdown.timeout-seconds")) {
        // drain within the grace period close() gives every child before killing it
        cmd.add("--shutdown-timeout");
        cmd.add(LOCAL_SHUTDOWN_TIMEOUT.toMillis() + "ms");
      }
      for (Map.Entry<String, String> e : spec.settings().entrySet()) {
        cmd.add("--set");
        cmd.add(e.getKey() + "=" + e.getValue());
      }
      commands.add(cmd);
    }
    routerTls = isTrue(spec.settings(), "router.tls.enabled");
    long deadline = System.nanoTime() + timeout.toNanos();
    // The first node seeds the Hazelcast cluster; the others join it in waves of one per core (a
    // stampede of JVMs starting at once on a small machine starves Hazelcast's join handshakes);
    // the router (a lite member, which holds no registry data) comes last.
    int last = nodes.size() - 1;
    spawn(nodes.get(0), commands.get(0));
    awaitReady(children.subList(0, 1), deadline, timeout);
    int wave = Math.max(1, Runtime.getRuntime().availableProcessors());
    for (int i = 1; i < last; i += wave) {
      int from = children.size();
      for (int j = i; j < Math.min(last, i + wave); j++) {
        spawn(nodes.get(j), commands.get(j));
      }
      awaitReady(children.subList(from, children.size()), deadline, timeout);
    }
    spawn(nodes.get(last), commands.get(last));
    awaitReady(children.subList(last, last + 1), deadline, timeout);
    awaitActive(spec, deadline);
  }

  private void spawn(String[] node, List<String> cmd) throws IOException {
    children.add(start(node[0], node[1], cmd));
  }

  private Child start(String id, String role, List<String> cmd) throws IOException {
    Process p = new ProcessBuilder(cmd).start();
    Child child = new Child(id, role, p, cmd);
    pump(child, p.getInputStream(), true);
    pump(child, p.getErrorStream(), false);
    return child;
  }

  /**
   * Starts {@code dead} (a child that exited) again with its command, in its place, and waits until
   * it is ready; the router comes back on the gRPC and HTTP ports it had, so its clients (and the
   * ready file) stay right. Workers and shards get fresh ports and re-register.
   */
  public synchronized Child restart(Child dead, Duration timeout)
      throws IOException, TimeoutException {
    if (closing) {
      throw new IOException("the cluster is stopping");
    }
    List<String> cmd = new ArrayList<>(dead.command);
    if (dead.role.equals("router")) {
      int at = cmd.indexOf("--grpc-port");
      cmd.set(at + 1, routerAddress.substring(routerAddress.lastIndexOf(':') + 1));
      if (routerHttpUrl != null) {
        cmd.add("--set");
        cmd.add(
            NodeConfigLoader.HTTP_PORT
                + "="
                + routerHttpUrl.substring(routerHttpUrl.lastIndexOf(':') + 1));
      }
    }
    Child fresh = start(dead.id, dead.role, cmd);
    children.set(children.indexOf(dead), fresh);
    awaitReady(List.of(fresh), System.nanoTime() + timeout.toNanos(), timeout);
    return fresh;
  }

  private void awaitReady(List<Child> which, long deadline, Duration timeout)
      throws IOException, TimeoutException {
    for (Child c : List.copyOf(which)) {
      try {
        String line = c.ready.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        if (c.role.equals("router")) {
          routerAddress = readyField(line, "grpc");
          String http = readyField(line, "http");
          routerHttpUrl = http == null ? null : (routerTls ? "https://" : "http://") + http;
        }
      } catch (TimeoutException e) {
        throw new TimeoutException(
            "node "
                + c.id
                + " did not start within "
                + timeout
                + "; its last output:\n"
                + c.lastLines());
      } catch (ExecutionException e) {
        throw new IOException(
            "node "
                + c.id
                + " failed to start: "
                + e.getCause().getMessage()
                + "; its last output:\n"
                + c.lastLines());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted while starting the cluster");
      }
    }
  }

  /**
   * How this process reaches the router: over TLS trusting the cluster CA ({@code pdserve.tls.ca})
   * when the router's public API has TLS on, else plaintext.
   */
  static TransportSecurity routerClientSecurity(Map<String, String> settings) throws IOException {
    if (!isTrue(settings, "router.tls.enabled")) {
      return TransportSecurity.plaintext();
    }
    String ca = setting(settings, "tls.ca");
    return TransportSecurity.client(
        Optional.ofNullable(ca).map(Path::of), Optional.empty(), Optional.empty());
  }

  private static boolean isTrue(Map<String, String> settings, String key) {
    return "true".equalsIgnoreCase(setting(settings, key));
  }

  private static String setting(Map<String, String> settings, String key) {
    String v = settings.get("pdserve." + key);
    return v != null ? v : settings.get(key);
  }

  private static Optional<Path> clusterTokenFile(Spec spec) {
    String v = spec.settings().get(NodeConfigLoader.AUTH_CLUSTER_TOKEN_FILE);
    if (v == null) {
      v =
          spec.settings()
              .get(
                  NodeConfigLoader.AUTH_CLUSTER_TOKEN_FILE.substring(
                      NodeConfigLoader.PREFIX.length()));
    }
    return v == null || v.isBlank() ? Optional.empty() : Optional.of(Path.of(v));
  }

  /** A {@code key=value} field of a node's ready line, or null. */
  static String readyField(String line, String key) {
    for (String part : line.trim().split("\\s+")) {
      if (part.startsWith(key + "=")) {
        return part.substring(key.length() + 1);
      }
    }
    return null;
  }

  private volatile List<NodeStatus> nodes = List.of();

  /** Waits until the router sees every node ACTIVE. */
  private void awaitActive(Spec spec, long deadline) throws TimeoutException {
    int expected = spec.prefill() + spec.decode() + spec.experts() + 1;
    NettyChannelBuilder built;
    try {
      built =
          NettyChannelBuilder.forTarget(
              routerAddress, routerClientSecurity(spec.settings()).channelCredentials());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    NettyChannelBuilder b = built;
    clusterTokenFile(spec)
        .map(f -> new SecretFile(f, "cluster token file", Ticker.systemTicker(), Duration.ZERO))
        .ifPresent(token -> b.intercept(GrpcAuth.bearer(token::first)));
    ManagedChannel ch = b.build();
    try {
      List<NodeStatus> last = List.of();
      while (System.nanoTime() < deadline) {
        try {
          last =
              AdminServiceGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(5, TimeUnit.SECONDS)
                  .listNodes(ListNodesRequest.getDefaultInstance())
                  .getNodesList();
          long active = last.stream().filter(n -> n.getState().equals("ACTIVE")).count();
          if (active >= expected) {
            nodes = List.copyOf(last);
            return;
          }
        } catch (RuntimeException e) {
          // the router may not answer yet
        }
        Thread.sleep(100);
      }
      throw new TimeoutException(
          "not every node became ACTIVE in time; the router sees: "
              + last.stream().map(n -> n.getId() + "=" + n.getState()).toList());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new TimeoutException("interrupted");
    } finally {
      ch.shutdownNow();
    }
  }

  private static List<String> javaCommand(Spec spec) {
    return nodeJavaCommand(spec.heap(), spec.logLevel());
  }

  /**
   * This JVM's executable and the flags a node needs from it (module opens, the logging manager,
   * Hazelcast properties), to which callers add their own flags and the main class.
   */
  public static List<String> javaWithThisJvmsModuleFlags() {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-")
          || a.startsWith("-Djava.util.logging.manager")
          || a.startsWith("-Dhazelcast.")) {
        cmd.add(a);
      }
    }
    return cmd;
  }

  /**
   * The command that starts a node JVM like this one ({@code pdserve} CLI arguments follow): the
   * module flags this JVM got, {@code -Xmx heap}, the flags that suit many JVMs on one machine.
   */
  public static List<String> nodeJavaCommand(String heap, String logLevel) {
    List<String> cmd = javaWithThisJvmsModuleFlags();
    cmd.add("-Xmx" + heap);
    // Many JVMs on one machine: C2 compilation in every process competes with serving for the
    // cores for minutes; the C1 tier alone gave twice the throughput on 2 cores
    // (docs/PERFORMANCE.md).
    // PDSERVE_NODE_JAVA_OPTS adds flags (e.g. -XX:TieredStopAtLevel=4 to get C2 back).
    cmd.add("-XX:TieredStopAtLevel=1");
    String extra = System.getenv("PDSERVE_NODE_JAVA_OPTS");
    if (extra != null && !extra.isBlank()) {
      cmd.addAll(List.of(extra.trim().split("\\s+")));
    }
    cmd.add("-XX:+UseSerialGC");
    cmd.add("-Dpdserve.log.level=" + logLevel);
    cmd.add("-Dhazelcast.logging.type=log4j2");
    cmd.add("-Dhazelcast.phone.home.enabled=false");
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add("dev.pdserve.launcher.Main");
    return cmd;
  }

  private void pump(Child child, InputStream in, boolean stdout) {
    Thread t =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  child.remember(line);
                  if (stdout && line.startsWith("PDSERVE-READY")) {
                    child.ready.complete(line);
                  } else {
                    log.accept("[" + child.id + "] " + line);
                  }
                }
              } catch (IOException e) {
                // the process ended
              }
              if (stdout) {
                child.ready.completeExceptionally(
                    new IOException("exited with code " + exitCode(child.process)));
              }
            },
            "local-" + child.id + (stdout ? "-out" : "-err"));
    t.setDaemon(true);
    t.start();
  }

  private static String exitCode(Process p) {
    try {
      return Integer.toString(p.waitFor());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "?";
    }
  }

  private static int[] freePorts(int n) throws IOException {
    int[] ports = new int[n];
    List<ServerSocket> held = new ArrayList<>();
    try {
      for (int i = 0; i < n; i++) {
        ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        held.add(s);
        ports[i] = s.getLocalPort();
      }
    } finally {
      for (ServerSocket s : held) {
        s.close();
      }
    }
    return ports;
  }

  /** Stops every process: SIGTERM, then a forced kill after 15 s. */
  @Override
  public void close() {
    closing = true;
    for (Child c : children) {
      c.process.destroy();
    }
    for (Child c : children) {
      try {
        if (!c.process.waitFor(15, TimeUnit.SECONDS)) {
          c.process.destroyForcibly();
          c.process.waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        c.process.destroyForcibly();
      }
    }
  }

  public Map<String, Long> pids() {
    Map<String, Long> m = new LinkedHashMap<>();
    for (Child c : children) {
      m.put(c.id, c.process.pid());
    }
    return m;
  }
}
