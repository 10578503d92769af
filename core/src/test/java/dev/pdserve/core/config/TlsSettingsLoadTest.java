package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The pdserve.tls.* and pdserve.router.tls.* keys as the loader reads and checks them. */
class TlsSettingsLoadTest {
  @TempDir Path dir;

  private NodeConfig load(Map<String, String> m) {
    java.util.HashMap<String, String> all = new java.util.HashMap<>(m);
    all.put("role", "prefill");
    return NodeConfigLoader.fromMap(all);
  }

  @Test
  void tlsIsOffByDefault() {
    NodeConfig c = load(Map.of());
    assertFalse(c.tls().cluster().enabled());
    assertFalse(c.tls().publicApi().enabled());
  }

  @Test
  void mutualTlsNeedsCertificateKeyAndCaEachNamed() {
    NodeConfigException e =
        assertThrows(NodeConfigException.class, () -> load(Map.of("tls.enabled", "true")));
    assertTrue(e.getMessage().contains("pdserve.tls.cert"), e.getMessage());
    assertTrue(e.getMessage().contains("pdserve.tls.key"), e.getMessage());
    assertTrue(e.getMessage().contains("pdserve.tls.ca"), e.getMessage());
  }

  @Test
  void missingFileIsRefusedWithItsKey() {
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class, () -> load(Map.of("tls.cert", "/no/such/node.crt")));
    assertTrue(e.getMessage().contains("pdserve.tls.cert"), e.getMessage());
    assertTrue(e.getMessage().contains("/no/such/node.crt"), e.getMessage());
  }

  @Test
  void routerTlsTakesTheNodeCertificateUnlessGivenItsOwn() throws Exception {
    Path cert = Files.writeString(dir.resolve("n.crt"), "x");
    Path key = Files.writeString(dir.resolve("n.key"), "x");
    Path ca = Files.writeString(dir.resolve("ca.crt"), "x");
    Path pub = Files.writeString(dir.resolve("pub.crt"), "x");
    NodeConfig c =
        load(
            Map.of(
                "tls.enabled", "true",
                "tls.cert", cert.toString(),
                "tls.key", key.toString(),
                "tls.ca", ca.toString(),
                "tls.reload-interval", "5m",
                "router.tls.enabled", "true",
                "router.tls.cert", pub.toString()));
    assertEquals(Optional.of(ca), c.tls().cluster().ca());
    assertEquals(Duration.ofMinutes(5), c.tls().cluster().reloadInterval());
    assertEquals(Optional.of(pub), c.tls().publicApi().cert());
    assertEquals(Optional.of(key), c.tls().publicApi().key());
    assertEquals(Optional.empty(), c.tls().publicApi().ca(), "no client certificates asked");
  }
}
