package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.tls.CertificateAuthority;
import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The throw-away PKI of {@code pdserve local --tls}: a CA and one node certificate (localhost,
 * 127.0.0.1) in a temporary directory only this user can open, and the settings that turn TLS on
 * with them. {@link #close()} deletes the directory (a {@link LocalCluster} given it closes it
 * after its processes stopped), so no private key outlives the run.
 */
public final class LocalTls implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(LocalTls.class);

  private final Path directory;
  private final CertificateAuthority.LocalFiles files;

  private LocalTls(Path directory, CertificateAuthority.LocalFiles files) {
    this.directory = directory;
    this.files = files;
  }

  /** A fresh CA and node certificate in a new temporary directory. */
  public static LocalTls generate() throws IOException {
    Path dir;
    try {
      dir =
          Files.createTempDirectory(
              "pdserve-local-tls-",
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    } catch (UnsupportedOperationException e) {
      dir = Files.createTempDirectory("pdserve-local-tls-");
    }
    try {
      return new LocalTls(dir, CertificateAuthority.writeLocalCluster(dir));
    } catch (IOException | RuntimeException e) {
      deleteTree(dir);
      throw e;
    }
  }

  public Path directory() {
    return directory;
  }

  public CertificateAuthority.LocalFiles files() {
    return files;
  }

  /** Mutual TLS between every node and TLS on the router's public APIs, with these files. */
  public Map<String, String> settings() {
    Map<String, String> m = new LinkedHashMap<>();
    m.put(NodeConfigLoader.PREFIX + "tls.enabled", "true");
    m.put(NodeConfigLoader.PREFIX + "tls.cert", files.cert().toString());
    m.put(NodeConfigLoader.PREFIX + "tls.key", files.key().toString());
    m.put(NodeConfigLoader.PREFIX + "tls.ca", files.ca().toString());
    m.put(NodeConfigLoader.PREFIX + "router.tls.enabled", "true");
    return m;
  }

  /** Deletes the directory and everything in it. Idempotent; a failure is logged, not thrown. */
  @Override
  public void close() {
    try {
      deleteTree(directory);
    } catch (IOException e) {
      LOG.warn("could not delete the local TLS directory {}: {}", directory, e.toString());
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    Files.walkFileTree(
        dir,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attrs)
              throws IOException {
            Files.deleteIfExists(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
            if (e != null && !(e instanceof NoSuchFileException)) {
              throw e;
            }
            Files.deleteIfExists(d);
            return FileVisitResult.CONTINUE;
          }
        });
  }
}
