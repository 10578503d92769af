package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.tls.PemFiles;
import dev.pdserve.model.engine.ModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The throw-away certificates of {@code pdserve local --tls} live only as long as the cluster: the
 * cluster deletes their directory when it closes, and a start that fails deletes it too.
 */
class LocalTlsTest {
  @Test
  void generatedCertificatesAreDeletedOnCloseOnce() throws Exception {
    LocalTls tls = LocalTls.generate();
    Path dir = tls.directory();
    assertTrue(Files.isDirectory(dir), dir + " was not created");
    for (Path f : List.of(tls.files().ca(), tls.files().cert(), tls.files().key())) {
      assertTrue(Files.isReadable(f), f + " missing");
      assertEquals(dir, f.getParent(), f + " outside the TLS directory");
    }
    assertFalse(PemFiles.certificates(tls.files().cert()).isEmpty(), "no node certificate");
    Map<String, String> s = tls.settings();
    assertEquals("true", s.get("pdserve.tls.enabled"));
    assertEquals("true", s.get("pdserve.router.tls.enabled"));
    assertEquals(tls.files().key().toString(), s.get("pdserve.tls.key"));

    tls.close();
    assertFalse(Files.exists(dir), dir + " still exists after close");
    tls.close(); // idempotent
  }

  @Test
  void failedStartDeletesTheCertificates() throws Exception {
    LocalTls tls = LocalTls.generate();
    LocalCluster.Spec spec =
        new LocalCluster.Spec(
            1,
            1,
            0,
            "no-such-preset",
            null,
            ModelSpec.DEFAULT_SEED,
            "16m",
            "WARN",
            tls.settings(),
            "384m");
    assertThrows(
        IOException.class,
        () -> LocalCluster.start(spec, line -> {}, Duration.ofSeconds(120), List.of(tls)),
        "a node with an unknown preset started");
    assertFalse(
        Files.exists(tls.directory()), tls.directory() + " still exists after a failed start");
  }
}
