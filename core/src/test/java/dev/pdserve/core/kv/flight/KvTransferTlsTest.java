package dev.pdserve.core.kv.flight;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.core.config.TlsSettings;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.tls.TestPki;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * KV pushes over the cluster's mutual TLS, on both receive paths (DIRECT and Flight's own stream)
 * with real servers on 127.0.0.1:0: a cluster member's push lands; a sender with another CA's
 * certificate, or in plaintext, is refused before a byte reaches the pool, whatever transfer id it
 * knows — the decode node's free blocks and the expected transfer are untouched.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class KvTransferTlsTest {
  private static final int PROMPT = 37;

  @TempDir Path dir;
  private final ModelConfig cfg = ModelPresets.get("tiny");
  private final KvLayout layout = KvLayout.of(cfg, KvDtype.FP32);
  private BufferAllocator root;
  private KvBlockPool pool;
  private TestPki pki;
  private TransportSecurity serverTls;

  @BeforeEach
  void setUp() throws Exception {
    root = new RootAllocator();
    pool = new KvBlockPool(root, "decode-pool", layout, 16L * layout.blockBytes());
    pki = new TestPki(dir, "cluster");
    serverTls = TransportSecurity.cluster(pki.node("decode"), "decode");
  }

  @AfterEach
  void tearDown() {
    serverTls.close();
    assertEquals(pool.totalBlocks(), pool.freeBlocks(), "KV blocks leaked");
    pool.close();
    assertEquals(0, root.getAllocatedMemory(), "Arrow memory still allocated");
    root.close();
  }

  private KvTransferServer server(KvTransferServer.ReceivePath path) throws Exception {
    return new KvTransferServer(
            root,
            pool,
            Location.forGrpcInsecure("127.0.0.1", 0),
            KvTransferServer.Options.DEFAULTS.withReceivePath(path),
            serverTls)
        .start();
  }

  private KvTransferClient.Options clientOptions(KvTransferServer.ReceivePath path) {
    return KvTransferClient.Options.DEFAULTS
        .withTimeout(Duration.ofSeconds(20))
        .withSendPath(
            path == KvTransferServer.ReceivePath.DIRECT
                ? KvTransferClient.SendPath.DIRECT
                : KvTransferClient.SendPath.FLIGHT_CLIENT);
  }

  private void push(KvTransferClient client, KvEndpoint target, String id) {
    float[] k = new float[cfg.numKvHeads() * PROMPT * cfg.headDim()];
    try (OutgoingTransfer out = client.open(target, id)) {
      for (int l = 0; l < cfg.numLayers(); l++) {
        out.sendLayer(l, k, k, PROMPT);
      }
      out.complete();
    }
  }

  @ParameterizedTest
  @EnumSource(KvTransferServer.ReceivePath.class)
  void clusterMemberPushLandsOverMutualTls(KvTransferServer.ReceivePath path) throws Exception {
    try (KvTransferServer server = server(path);
        TransportSecurity prefillTls = TransportSecurity.cluster(pki.node("prefill"), "p");
        KvTransferClient client =
            new KvTransferClient(root, layout, clientOptions(path), prefillTls)) {
      assertEquals("grpc+tls", server.location().getUri().getScheme());
      int[] blocks = pool.allocate(layout.blocksFor(PROMPT));
      IncomingTransfer in = server.expect("req-1", blocks, PROMPT);
      push(client, new KvEndpoint("127.0.0.1", server.port()), "req-1");
      in.await(Duration.ofSeconds(20));
      assertEquals(cfg.numLayers(), in.layersReceived());
      pool.free(blocks);
    }
  }

  @ParameterizedTest
  @EnumSource(KvTransferServer.ReceivePath.class)
  void pushWithAnotherCasCertificateIsRefusedAndThePoolIsUntouched(
      KvTransferServer.ReceivePath path) throws Exception {
    TestPki other = new TestPki(dir, "other");
    TlsSettings foreign = other.node("intruder");
    // It trusts the cluster CA (it can see the server's certificate is genuine) and knows the
    // transfer id, but its own certificate was signed by another CA.
    TlsSettings intruder =
        new TlsSettings(
            true, foreign.cert(), foreign.key(), Optional.of(pki.caFile), Duration.ZERO);
    try (KvTransferServer server = server(path);
        TransportSecurity intruderTls = TransportSecurity.cluster(intruder, "x");
        KvTransferClient client =
            new KvTransferClient(root, layout, clientOptions(path), intruderTls);
        KvTransferClient plaintext = new KvTransferClient(root, layout, clientOptions(path))) {
      int[] blocks = pool.allocate(layout.blocksFor(PROMPT));
      IncomingTransfer in = server.expect("req-1", blocks, PROMPT);
      int free = pool.freeBlocks();
      KvEndpoint target = new KvEndpoint("127.0.0.1", server.port());

      assertThrows(RuntimeException.class, () -> push(client, target, "req-1"));
      assertThrows(RuntimeException.class, () -> push(plaintext, target, "req-1"));

      assertEquals(free, pool.freeBlocks(), "the decode node's free blocks changed");
      assertEquals(0, in.layersReceived(), "a refused push wrote layers");
      assertEquals(0, in.bytesReceived(), "a refused push wrote bytes");
      assertFalse(in.completion().isDone(), "the expected transfer ended");
      assertEquals(1, server.pendingTransfers());
      server.cancel("req-1");
      pool.free(blocks);
    }
  }
}
