package dev.pdserve.core.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.flight.IncomingTransfer;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.kv.flight.OutgoingTransfer;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.time.Duration;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The Arrow memory gauges of a worker-shaped allocator tree (a node's child of the root, the KV
 * pool, a real Flight KV server and client on 127.0.0.1:0 under it), scraped from a real metrics
 * endpoint while a KV transfer holds buffers and after it let them go.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ArrowMemoryMetricsTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final int PROMPT = 37; // two full blocks of 16 and a partial one
  private static final String NODE = "worker-t0";

  /** The send and receive paths a transfer can take. */
  enum Paths {
    DIRECT(KvTransferClient.SendPath.DIRECT, KvTransferServer.ReceivePath.DIRECT),
    FLIGHT(KvTransferClient.SendPath.FLIGHT_CLIENT, KvTransferServer.ReceivePath.FLIGHT_STREAM);

    final KvTransferClient.SendPath send;
    final KvTransferServer.ReceivePath receive;

    Paths(KvTransferClient.SendPath send, KvTransferServer.ReceivePath receive) {
      this.send = send;
      this.receive = receive;
    }
  }

  private final ModelConfig cfg = ModelPresets.get("tiny");
  private final KvLayout layout = KvLayout.of(cfg, KvDtype.FP32);
  private BufferAllocator root;
  private BufferAllocator node;
  private KvBlockPool pool;
  private KvTransferServer server;
  private KvTransferClient client;
  private NodeMetrics metrics;
  private Location location;

  private void start(Paths paths) throws Exception {
    root = new RootAllocator();
    node = root.newChildAllocator(NODE, 0, Long.MAX_VALUE);
    pool = new KvBlockPool(node, "kv-pool", layout, 16L * layout.blockBytes());
    server =
        new KvTransferServer(
                node,
                pool,
                Location.forGrpcInsecure("127.0.0.1", 0),
                KvTransferServer.Options.DEFAULTS.withReceivePath(paths.receive))
            .start();
    location = Location.forGrpcInsecure("127.0.0.1", server.port());
    client =
        new KvTransferClient(
            node, layout, KvTransferClient.Options.DEFAULTS.withSendPath(paths.send));
    metrics = new NodeMetrics("t0", "127.0.0.1", "127.0.0.1", 0, "tiny").start();
    ArrowMemoryMetrics.register(metrics, node);
  }

  @AfterEach
  void tearDown() {
    if (metrics != null) {
      metrics.close();
    }
    if (client != null) {
      client.close();
    }
    if (server != null) {
      server.close();
    }
    if (pool != null) {
      assertEquals(pool.totalBlocks(), pool.freeBlocks(), "KV blocks leaked");
      pool.close();
    }
    if (node != null) {
      node.close();
      assertEquals(0, root.getAllocatedMemory(), "Arrow memory still allocated at the end");
      root.close();
    }
  }

  /** One scrape of both gauges: allocator name → value. */
  private record Scrape(Map<String, Double> allocated, Map<String, Double> peak) {
    long allocated(String allocator) {
      Double v = allocated.get(allocator);
      assertNotNull(v, "no " + MetricNames.ARROW_ALLOCATED_BYTES + " for " + allocator);
      return v.longValue();
    }

    long peak(String allocator) {
      Double v = peak.get(allocator);
      assertNotNull(v, "no " + MetricNames.ARROW_PEAK_BYTES + " for " + allocator);
      return v.longValue();
    }
  }

  private Scrape scrape() throws Exception {
    String text = NodeMetricsTest.get(metrics.url());
    return new Scrape(
        series(text, MetricNames.ARROW_ALLOCATED_BYTES),
        series(text, MetricNames.ARROW_PEAK_BYTES));
  }

  private static Map<String, Double> series(String text, String name) {
    Pattern p =
        Pattern.compile(
            "^" + Pattern.quote(name) + "\\{allocator=\"([^\"]+)\"\\} (\\S+)$", Pattern.MULTILINE);
    Map<String, Double> out = new TreeMap<>();
    Matcher m = p.matcher(text);
    while (m.find()) {
      out.put(m.group(1), Double.parseDouble(m.group(2)));
    }
    assertFalse(out.isEmpty(), "no " + name + " samples in:\n" + text);
    return out;
  }

  /** Waits (bounded, not timed) until {@code done} holds; fails saying {@code what}. */
  private static void await(BooleanSupplier done, String what) throws InterruptedException {
    long until = System.nanoTime() + WAIT.toNanos();
    while (!done.getAsBoolean()) {
      assertTrue(System.nanoTime() < until, "never: " + what);
      Thread.sleep(5);
    }
  }

  private float[][][] promptKv(long seed) {
    Random r = new Random(seed);
    float[][][] kv = new float[cfg.numLayers()][2][cfg.numKvHeads() * PROMPT * cfg.headDim()];
    for (float[][] layer : kv) {
      for (float[] half : layer) {
        for (int i = 0; i < half.length; i++) {
          half[i] = (float) r.nextGaussian();
        }
      }
    }
    return kv;
  }

  @Test
  void theNodesSeriesIsItsTotalAndEachDirectChildHasOne() throws Exception {
    start(Paths.DIRECT);
    Scrape s = scrape();
    assertEquals(
        Set.of(NODE, "kv-pool", "kv-transfer-server", "kv-transfer-client"),
        s.allocated().keySet(),
        "one series per allocator: the node's own and its direct children");
    assertEquals(s.allocated().keySet(), s.peak().keySet(), "peaks of the same allocators");
    assertEquals(node.getAllocatedMemory(), s.allocated(NODE), "the node's bytes, as Arrow has it");
    assertTrue(s.allocated("kv-pool") >= pool.totalBlocks() * layout.blockBytes(), "pool bytes");
    assertEquals(
        s.allocated("kv-pool")
            + s.allocated("kv-transfer-server")
            + s.allocated("kv-transfer-client"),
        s.allocated(NODE),
        "the node's series is the sum of its children (nothing is allocated on it directly)");

    // A child made after registration is read at the next scrape, and goes when it is closed.
    BufferAllocator late = node.newChildAllocator("late", 0, Long.MAX_VALUE);
    ArrowBuf buf = late.buffer(4096);
    Scrape withLate = scrape();
    assertEquals(late.getAllocatedMemory(), withLate.allocated("late"));
    assertEquals(s.allocated(NODE) + late.getAllocatedMemory(), withLate.allocated(NODE));
    buf.close();
    late.close();
    Scrape after = scrape();
    assertFalse(after.allocated().containsKey("late"), "a closed child's series went away");
    assertEquals(s.allocated(NODE), after.allocated(NODE), "back to the baseline");
    assertTrue(after.peak(NODE) >= withLate.allocated(NODE), "the peak keeps the high mark");
  }

  @ParameterizedTest
  @EnumSource(Paths.class)
  void bytesRiseWhileATransferHoldsBuffersAndReturnToTheBaselineOnceItEnds(Paths paths)
      throws Exception {
    start(paths);
    float[][][] kv = promptKv(1);
    Scrape before = scrape();
    int[] reserved = pool.allocate(layout.blocksFor(PROMPT));
    IncomingTransfer in = server.expect("req-mem", reserved, PROMPT);
    Scrape sending;
    try (OutgoingTransfer out = client.open(location, "req-mem")) {
      for (int l = 0; l < cfg.numLayers(); l++) {
        out.sendLayer(l, kv[l][0], kv[l][1], PROMPT);
      }
      // Every layer is queued; the sender's staging buffers are held until the push completes.
      sending = scrape();
      out.complete();
    }
    in.await(WAIT);
    assertTrue(
        sending.allocated("kv-transfer-client") > before.allocated("kv-transfer-client"),
        "the sender holds staging buffers during the push: "
            + before.allocated()
            + " -> "
            + sending.allocated());
    assertTrue(sending.allocated(NODE) > before.allocated(NODE), "the node's total rose with them");
    assertEquals(
        before.allocated("kv-pool"), sending.allocated("kv-pool"), "the pool is allocated once");

    Scrape done = scrape();
    assertEquals(
        before.allocated("kv-transfer-client"),
        done.allocated("kv-transfer-client"),
        "the sender gave every buffer back once the push completed");
    // The receiver lets go of a batch's buffers after it acknowledged it: wait for the last one.
    await(
        () -> node.getAllocatedMemory() == (long) before.allocated(NODE),
        "the node's Arrow bytes return to " + before.allocated(NODE));
    Scrape settled = scrape();
    assertEquals(before.allocated(), settled.allocated(), "every allocator back to its baseline");
    assertTrue(
        settled.peak("kv-transfer-client") >= sending.allocated("kv-transfer-client"),
        "the sender's peak remembers the push");
    assertTrue(settled.peak(NODE) >= sending.allocated(NODE), "so does the node's");
    pool.free(reserved);
  }

  @ParameterizedTest
  @EnumSource(Paths.class)
  void anAbandonedTransferGivesItsBuffersBackToo(Paths paths) throws Exception {
    start(paths);
    float[][][] kv = promptKv(2);
    Scrape before = scrape();
    int[] reserved = pool.allocate(layout.blocksFor(PROMPT));
    server.expect("req-gone", reserved, PROMPT);
    Scrape sending;
    try (OutgoingTransfer out = client.open(location, "req-gone")) {
      out.sendLayer(0, kv[0][0], kv[0][1], PROMPT);
      out.sendLayer(1, kv[1][0], kv[1][1], PROMPT);
      sending = scrape();
    } // closed without complete(): the push is cancelled
    assertTrue(
        sending.allocated("kv-transfer-client") > before.allocated("kv-transfer-client"),
        "the sender held buffers for the layers it sent: " + sending.allocated());
    assertEquals(
        before.allocated("kv-transfer-client"),
        scrape().allocated("kv-transfer-client"),
        "closing the push freed the sender's buffers");
    assertTrue(server.cancel("req-gone"), "the half-sent transfer was still pending");
    await(
        () -> node.getAllocatedMemory() == (long) before.allocated(NODE),
        "the node's Arrow bytes return to " + before.allocated(NODE));
    assertEquals(before.allocated(), scrape().allocated(), "every allocator back to its baseline");
    pool.free(reserved);
  }
}
