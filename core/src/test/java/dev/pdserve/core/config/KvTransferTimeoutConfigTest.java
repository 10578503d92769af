package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@code pdserve.kv.transfer-timeout}: the bound of one KV handoff, on both worker roles. */
class KvTransferTimeoutConfigTest {
  @Test
  void defaultsToAMinuteAndTakesADuration() {
    assertEquals(
        Duration.ofSeconds(60),
        NodeConfigLoader.fromMap(Map.of("role", "prefill")).serving().kvTransferTimeout());
    assertEquals(
        Duration.ofMinutes(10),
        NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.transfer-timeout", "10m"))
            .serving()
            .kvTransferTimeout());
  }

  @Test
  void zeroIsRefusedNamingTheKey() {
    RuntimeException e =
        assertThrows(
            RuntimeException.class,
            () -> NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.transfer-timeout", "0")));
    assertTrue(e.getMessage().contains("pdserve.kv.transfer-timeout"), e.getMessage());
    assertTrue(e.getMessage().contains("more than 0"), e.getMessage());
  }
}
