package dev.pdserve.core.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.config.AuthSettings;
import dev.pdserve.core.config.NodeConfigException;
import dev.pdserve.core.config.NodeConfigLoader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AccessControlTest {
  @TempDir Path dir;
  private final FakeTicker ticker = new FakeTicker();

  private Path write(String name, String content) throws IOException {
    return Files.writeString(dir.resolve(name), content);
  }

  private AccessControl access(boolean metricsOpen, boolean healthOpen) throws IOException {
    Path keys = write("keys", "# team keys\n\nkey-one\n  key-two  \n");
    Path token = write("token", "cluster-secret\n");
    return AccessControl.of(
        new AuthSettings(Optional.of(keys), Optional.of(token), metricsOpen, healthOpen),
        ticker,
        Duration.ofSeconds(2));
  }

  @Test
  void keysOpenPublicRoutesOnlyAndTheTokenOpensEverything() throws IOException {
    AccessControl a = access(false, true);
    assertTrue(a.check(Route.PUBLIC, "Bearer key-one").allowed());
    assertTrue(a.check(Route.PUBLIC, "bearer key-two").allowed(), "scheme is case-insensitive");
    assertTrue(a.check(Route.PUBLIC, "Bearer cluster-secret").allowed());
    assertTrue(a.check(Route.CLUSTER, "Bearer cluster-secret").allowed());
    assertTrue(a.check(Route.METRICS, "Bearer key-one").allowed());

    assertEquals(AccessControl.WRONG_TOKEN, a.check(Route.CLUSTER, "Bearer key-one").message());
    assertEquals(AccessControl.MISSING_TOKEN, a.check(Route.CLUSTER, null).message());
    assertEquals(AccessControl.MISSING_KEY, a.check(Route.PUBLIC, null).message());
    assertEquals(AccessControl.MISSING_KEY, a.check(Route.METRICS, "").message());
    assertEquals(AccessControl.WRONG_KEY, a.check(Route.PUBLIC, "Bearer key-on").message());
    assertEquals(AccessControl.MALFORMED, a.check(Route.PUBLIC, "key-one").message());
    assertEquals(AccessControl.MALFORMED, a.check(Route.PUBLIC, "Basic a2V5").message());
    assertFalse(a.check(Route.PUBLIC, "Bearer # team keys").allowed(), "comments are no keys");
    assertTrue(a.check(Route.HEALTH, null).allowed(), "health open");
    assertEquals("cluster-secret", a.clusterToken().orElseThrow());
  }

  @Test
  void refusalsNeverRepeatTheCredential() throws IOException {
    AccessControl a = access(false, false);
    for (Route r : Route.values()) {
      String m = a.check(r, "Bearer leaked-guess-123").message();
      assertFalse(m.isEmpty(), r + " refused");
      assertFalse(m.contains("leaked-guess-123"), m);
    }
  }

  @Test
  void metricsAndHealthOpenWhenConfigured() throws IOException {
    AccessControl a = access(true, true);
    assertTrue(a.check(Route.METRICS, null).allowed());
    assertTrue(a.check(Route.HEALTH, null).allowed());
    AccessControl closed = access(false, false);
    assertFalse(closed.check(Route.METRICS, null).allowed());
    assertFalse(closed.check(Route.HEALTH, null).allowed());
  }

  @Test
  void aRewrittenKeysFileTakesEffectAfterThePollPeriod() throws IOException {
    AccessControl a = access(false, true);
    assertTrue(a.check(Route.PUBLIC, "Bearer key-one").allowed());
    write("keys", "key-three\n");
    ticker.advance(1, TimeUnit.SECONDS);
    assertTrue(a.check(Route.PUBLIC, "Bearer key-one").allowed(), "not looked at yet");
    ticker.advance(1, TimeUnit.SECONDS);
    assertFalse(a.check(Route.PUBLIC, "Bearer key-one").allowed(), "revoked");
    assertTrue(a.check(Route.PUBLIC, "Bearer key-three").allowed(), "added");
  }

  @Test
  void aFileThatEmptiesOrVanishesKeepsTheKeysReadBefore() throws IOException {
    AccessControl a = access(false, true);
    write("keys", "# nothing\n");
    ticker.advance(5, TimeUnit.SECONDS);
    assertTrue(a.check(Route.PUBLIC, "Bearer key-one").allowed());
    Files.delete(dir.resolve("keys"));
    ticker.advance(5, TimeUnit.SECONDS);
    assertTrue(a.check(Route.PUBLIC, "Bearer key-two").allowed());
  }

  @Test
  void aRotatedClusterTokenIsSentAndOldAndNewAccepted() throws IOException {
    AccessControl a = access(false, true);
    write("token", "new-secret\ncluster-secret\n");
    ticker.advance(2, TimeUnit.SECONDS);
    assertEquals("new-secret", a.clusterToken().orElseThrow());
    assertTrue(a.check(Route.CLUSTER, "Bearer cluster-secret").allowed());
    assertTrue(a.check(Route.CLUSTER, "Bearer new-secret").allowed());
  }

  @Test
  void anEmptyFileIsRefusedAtStartNamingIt() throws IOException {
    Path keys = write("keys", "\n# only a comment\n");
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                AccessControl.of(
                    new AuthSettings(Optional.of(keys), Optional.empty(), false, true), ticker));
    assertTrue(e.getMessage().contains("pdserve.auth.api-keys-file"), e.getMessage());
    assertTrue(e.getMessage().contains("holds no secret"), e.getMessage());
  }

  @Test
  void offMeansEverythingOpen() {
    AccessControl a = AccessControl.of(AuthSettings.OFF, ticker);
    assertFalse(a.enabled());
    for (Route r : Route.values()) {
      assertTrue(a.check(r, null).allowed());
    }
    assertTrue(a.clusterToken().isEmpty());
  }

  @Test
  void configNeedsAClusterTokenWithApiKeysAndStartNeedsReadableFiles() throws IOException {
    Path keys = write("keys", "k\n");
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "router", "auth.api-keys-file", keys.toString())));
    assertTrue(e.getMessage().contains("pdserve.auth.cluster-token-file"), e.getMessage());
    IllegalArgumentException missing =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                AccessControl.of(
                    new AuthSettings(
                        Optional.of(dir.resolve("nope")), Optional.of(keys), false, true),
                    ticker));
    assertTrue(missing.getMessage().contains("cannot read it"), missing.getMessage());
    assertTrue(missing.getMessage().contains("pdserve.auth.api-keys-file"), missing.getMessage());
    var ok =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "router",
                "auth.api-keys-file",
                keys.toString(),
                "auth.cluster-token-file",
                keys.toString(),
                "auth.metrics-open",
                "true"));
    assertEquals(Optional.of(keys), ok.auth().apiKeysFile());
    assertTrue(ok.auth().metricsOpen());
    assertTrue(ok.auth().healthOpen());
    assertEquals(
        AuthSettings.OFF, NodeConfigLoader.fromMap(Map.of("role", "router")).auth(), "default off");
  }
}
