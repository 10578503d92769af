package dev.pdserve.launcher.cluster;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.node.ExpertNode;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.router.RouterOptions;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.arrow.memory.RootAllocator;

/**
 * A whole pdserve cluster in this JVM with real servers: embedded Hazelcast members on loopback,
 * Netty gRPC servers and Arrow Flight servers on port 0, real ONNX Runtime sessions.
 */
public final class InJvmCluster implements AutoCloseable {
  public final RootAllocator allocator = new RootAllocator();
  public final List<WorkerNode> prefill = new ArrayList<>();
  public final List<WorkerNode> decode = new ArrayList<>();
  public final List<AutoCloseable> shards = new ArrayList<>();
  public RouterNode router;
  public ManagedChannel channel;
  private final String cluster = "itest-" + UUID.randomUUID().toString().substring(0, 8);
  private String seed; // hazelcast address of the first member
  private final Map<String, String> extra = new HashMap<>();

  /** The Hazelcast cluster name its members use (for a node started in another process). */
  public String clusterName() {
    return cluster;
  }

  /** The first member's Hazelcast address, {@code host:port} (a seed for other processes). */
  public String seed() {
    return seed;
  }

  public InJvmCluster set(String key, String value) {
    extra.put(key, value);
    return this;
  }

  public NodeConfig config(String role, String id, Map<String, String> more) {
    Map<String, String> m = new HashMap<>();
    m.put("role", role);
    m.put("node.id", id);
    m.put("bind.host", "127.0.0.1");
    m.put("grpc.port", "0");
    m.put("flight.port", "0");
    m.put("cluster.name", cluster);
    m.put("cluster.port", "0");
    m.put("cluster.join-wait-seconds", "0");
    m.put("kv.budget-bytes", "8m");
    m.put("ort.threads", "2");
    m.put("coordinator.enabled", "false"); // stable roles unless a test turns it on
    // no overload refusal unless a test turns it on (OverloadRefusalTest): a loaded machine's
    // slow prefill would otherwise refuse requests that tests expect to be served
    m.put("router.max-queue-delay", "0");
    if (seed != null) {
      m.put("cluster.members", seed);
    }
    m.putAll(extra);
    m.putAll(more);
    return NodeConfigLoader.fromMap(m);
  }

  public WorkerNode addWorker(String role, Map<String, String> more) throws IOException {
    List<WorkerNode> list = role.equals("prefill") ? prefill : decode;
    WorkerNode w =
        WorkerNode.start(
            config(role, role.charAt(0) + "" + list.size(), more),
            allocator,
            WorkerNode.ExpertBackendFactory.fromConfig());
    list.add(w);
    if (seed == null) {
      seed = w.member().hazelcastAddress().toString();
    }
    return w;
  }

  public ExpertNode addShard(String range) throws IOException {
    ExpertNode e =
        ExpertNode.start(config("expert", "e" + shards.size(), Map.of("expert.range", range)));
    shards.add(e);
    if (seed == null) {
      seed = e.member().hazelcastAddress().toString();
    }
    return e;
  }

  /** An expert shard with node id {@code id} and {@code more} settings (keys without prefix). */
  public ExpertNode addShard(String id, Map<String, String> more) throws IOException {
    ExpertNode e = ExpertNode.start(config("expert", id, more));
    shards.add(e);
    if (seed == null) {
      seed = e.member().hazelcastAddress().toString();
    }
    return e;
  }

  public RouterNode startRouter(RouterOptions options) throws IOException {
    router =
        RouterNode.start(
            config("router", "router", Map.of("cluster.lite-member", "true")), options);
    channel = NettyChannelBuilder.forTarget(router.grpcAddress()).usePlaintext().build();
    return router;
  }

  public static InJvmCluster start(int prefills, int decodes) throws IOException {
    return start(prefills, decodes, 0);
  }

  /**
   * {@code shards} expert shards splitting the 64 expert indices evenly; 0 = experts in the
   * workers.
   */
  public static InJvmCluster start(int prefills, int decodes, int shards) throws IOException {
    return start(prefills, decodes, shards, Map.of());
  }

  /**
   * As above, with {@code settings} (config keys without the {@code pdserve.} prefix) on every
   * node.
   */
  public static InJvmCluster start(
      int prefills, int decodes, int shards, Map<String, String> settings) throws IOException {
    InJvmCluster c = new InJvmCluster();
    settings.forEach(c::set);
    try {
      for (int i = 0; i < shards; i++) {
        int per = 64 / shards;
        c.addShard((i * per) + "-" + (i == shards - 1 ? 63 : (i + 1) * per - 1));
      }
      Map<String, String> mode = Map.of("experts.mode", shards > 0 ? "remote" : "local");
      for (int i = 0; i < decodes; i++) {
        c.addWorker("decode", mode);
      }
      for (int i = 0; i < prefills; i++) {
        c.addWorker("prefill", mode);
      }
      c.startRouter(RouterOptions.defaults());
      c.awaitRouterSees(prefills, decodes);
      return c;
    } catch (IOException | RuntimeException e) {
      c.close();
      throw e;
    }
  }

  public void awaitRouterSees(int prefills, int decodes) {
    await(
        Duration.ofSeconds(20),
        () ->
            router.directory().active(NodeRole.PREFILL).size() == prefills
                && router.directory().active(NodeRole.DECODE).size() == decodes,
        "router to see " + prefills + " prefill and " + decodes + " decode nodes");
  }

  public GenerationGrpc.GenerationBlockingStub blocking() {
    return GenerationGrpc.newBlockingStub(channel).withDeadlineAfter(120, TimeUnit.SECONDS);
  }

  /** Generates through the router and returns the streamed token ids (and the completion). */
  public Result generate(GenerateRequest req) {
    Iterator<GenerateResponse> it = blocking().generate(req);
    List<Integer> ids = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    GenerateResponse last = null;
    while (it.hasNext()) {
      last = it.next();
      if (last.hasDelta()) {
        ids.addAll(last.getDelta().getTokenIdsList());
        text.append(last.getDelta().getText());
      }
    }
    return new Result(
        ids.stream().mapToInt(Integer::intValue).toArray(),
        text.toString(),
        last == null || !last.hasCompletion() ? null : last.getCompletion());
  }

  public record Result(int[] tokenIds, String text, Completion completion) {}

  /**
   * No KV block is held by a request or leaked on any worker (eventually: frees happen on other
   * threads). Blocks kept by a prefix cache are not leaks: every block is free or cached, and no
   * cached block is pinned by a live prompt.
   */
  public void awaitNoKvHeld() {
    List<WorkerNode> all = new ArrayList<>(prefill);
    all.addAll(decode);
    await(
        Duration.ofSeconds(10),
        () -> all.stream().allMatch(w -> heldBlocks(w) == 0),
        "every KV pool to be free or cached again; free+cached/total (pinned): "
            + all.stream()
                .map(
                    w ->
                        w.id()
                            + "="
                            + w.pool().freeBlocks()
                            + "+"
                            + w.pool().cachedBlocks()
                            + "/"
                            + w.pool().totalBlocks()
                            + " ("
                            + (w.pool().cachedBlocks() - w.pool().reclaimableBlocks())
                            + ")")
                .toList());
  }

  /** Blocks held by requests (not free, not in a prefix cache's reclaimable set) on {@code w}. */
  public static int heldBlocks(WorkerNode w) {
    return w.pool().totalBlocks() - w.pool().freeBlocks() - w.pool().reclaimableBlocks();
  }

  public static void await(Duration timeout, BooleanSupplier cond, String what) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!cond.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("not within " + timeout + ": " + what);
      }
      try {
        Thread.sleep(20);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(e);
      }
    }
  }

  @Override
  public void close() {
    if (channel != null) {
      channel.shutdownNow();
    }
    List<AutoCloseable> all = new ArrayList<>();
    if (router != null) {
      all.add(router);
    }
    all.addAll(prefill);
    all.addAll(decode);
    all.addAll(shards);
    all.parallelStream()
        .forEach(
            c -> {
              try {
                c.close();
              } catch (Exception e) {
                // reported by the allocator check below if it leaked
              }
            });
    allocator.close();
  }
}
