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
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
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
 * started (SIGTERM, then a kill after a grace period), then closes what it was given to own (the
 * throw-away certificates of {@code --tls}).
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

    /** The setting {@code key} (given with or without the {@code pdserve.} prefix), or null. */
    String setting(String key) {
      String v = settings.get(NodeConfigLoader.PREFIX + key);
      return v != null ? v : settings.get(key);
    }

    boolean isOn(String key) {
      return "true".equalsIgnoreCase(setting(key));
    }

    Optional<Path> clusterTokenFile() {
      String v =
          setting(
              NodeConfigLoader.AUTH_CLUSTER_TOKEN_FILE.substring(NodeConfigLoader.PREFIX.length()));
      return v == null || v.isBlank() ? Optional.empty() : Optional.of(Path.of(v));
    }
  }

  /** How long each child drains on SIGTERM: less than the 15 s {@link #close()} waits. */
  public static final Duration LOCAL_SHUTDOWN_TIMEOUT = Duration.ofSeconds(10);

  private final List<LocalChild> children = new ArrayList<>();
  private final List<AutoCloseable> owned; // closed after the processes stopped, last first
  private final Consumer<String> log;
  private String routerAddress;
  private String routerHttpUrl;
  private boolean routerTls; // the router's public API is HTTPS
  private volatile boolean closing;

  private LocalCluster(Consumer<String> log, List<? extends AutoCloseable> owned) {
    this.log = log;
    this.owned = new ArrayList<>(owned);
  }

  public static LocalCluster start(Spec spec, Consumer<String> log, Duration timeout)
      throws IOException, TimeoutException {
    return start(spec, log, timeout, List.of());
  }

  /**
   * As above; the cluster owns {@code owned} (e.g. a {@link LocalTls} its settings point at) and
   * closes it after its processes stopped, in {@link #close()} or when the start fails.
   */
  public static LocalCluster start(
      Spec spec, Consumer<String> log, Duration timeout, List<? extends AutoCloseable> owned)
      throws IOException, TimeoutException {
    LocalCluster c = new LocalCluster(log, owned);
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

  public List<LocalChild> children() {
    return List.copyOf(children);
  }

  /** Completes when any child exits while the cluster is not closing. */
  public CompletableFuture<LocalChild> anyExit() {
    CompletableFuture<LocalChild> f = new CompletableFuture<>();
    for (LocalChild c : children) {
      c.process()
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
    int[] ports = NodeJvm.freeLoopbackPorts(nodes.size());
    StringBuilder members = new StringBuilder();
    for (int p : ports) {
      members.append(members.length() == 0 ? "" : ",").append("127.0.0.1:").append(p);
    }
    LocalNodeCommand command = new LocalNodeCommand(spec, cluster, members.toString());
    List<List<String>> commands = new ArrayList<>();
    for (int i = 0; i < nodes.size(); i++) {
      commands.add(command.forNode(nodes.get(i)[0], nodes.get(i)[1], i, ports[i]));
    }
    routerTls = spec.isOn("router.tls.enabled");
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

  private LocalChild start(String id, String role, List<String> cmd) throws IOException {
    return LocalChild.start(id, role, cmd, log);
  }

  /**
   * Starts {@code dead} (a child that exited) again with its command, in its place, and waits until
   * it is ready; the router comes back on the gRPC and HTTP ports it had, so its clients (and the
   * ready file) stay right. Workers and shards get fresh ports and re-register.
   */
  public synchronized LocalChild restart(LocalChild dead, Duration timeout)
      throws IOException, TimeoutException {
    if (closing) {
      throw new IOException("the cluster is stopping");
    }
    List<String> cmd = new ArrayList<>(dead.command());
    if (dead.role().equals("router")) {
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
    LocalChild fresh = start(dead.id(), dead.role(), cmd);
    children.set(children.indexOf(dead), fresh);
    awaitReady(List.of(fresh), System.nanoTime() + timeout.toNanos(), timeout);
    return fresh;
  }

  private void awaitReady(List<LocalChild> which, long deadline, Duration timeout)
      throws IOException, TimeoutException {
    for (LocalChild c : List.copyOf(which)) {
      try {
        String line =
            c.ready().get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        if (c.role().equals("router")) {
          routerAddress = LocalChild.readyField(line, "grpc");
          String http = LocalChild.readyField(line, "http");
          routerHttpUrl = http == null ? null : (routerTls ? "https://" : "http://") + http;
        }
      } catch (TimeoutException e) {
        throw new TimeoutException(
            "node "
                + c.id()
                + " did not start within "
                + timeout
                + "; its last output:\n"
                + c.lastLines());
      } catch (ExecutionException e) {
        throw new IOException(
            "node "
                + c.id()
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
  static TransportSecurity routerClientSecurity(Spec spec) throws IOException {
    if (!spec.isOn("router.tls.enabled")) {
      return TransportSecurity.plaintext();
    }
    return TransportSecurity.client(
        Optional.ofNullable(spec.setting("tls.ca")).map(Path::of),
        Optional.empty(),
        Optional.empty());
  }

  private volatile List<NodeStatus> nodes = List.of();

  /** Waits until the router sees every node ACTIVE. */
  private void awaitActive(Spec spec, long deadline) throws TimeoutException {
    int expected = spec.prefill() + spec.decode() + spec.experts() + 1;
    NettyChannelBuilder built;
    try {
      built =
          NettyChannelBuilder.forTarget(
              routerAddress, routerClientSecurity(spec).channelCredentials());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    NettyChannelBuilder b = built;
    spec.clusterTokenFile()
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

  /**
   * Stops every process (SIGTERM, then a forced kill after 15 s), then closes what the cluster
   * owns. Idempotent.
   */
  @Override
  public void close() {
    closing = true;
    for (LocalChild c : children) {
      c.process().destroy();
    }
    for (LocalChild c : children) {
      try {
        if (!c.process().waitFor(15, TimeUnit.SECONDS)) {
          c.process().destroyForcibly();
          c.process().waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        c.process().destroyForcibly();
      }
    }
    closeOwned();
  }

  private void closeOwned() {
    List<AutoCloseable> toClose;
    synchronized (owned) {
      toClose = new ArrayList<>(owned);
      owned.clear();
    }
    for (int i = toClose.size() - 1; i >= 0; i--) {
      try {
        toClose.get(i).close();
      } catch (Exception e) {
        log.accept("pdserve local: closing " + toClose.get(i) + " failed: " + e);
      }
    }
  }

  public Map<String, Long> pids() {
    Map<String, Long> m = new LinkedHashMap<>();
    for (LocalChild c : children) {
      m.put(c.id(), c.process().pid());
    }
    return m;
  }
}
