package dev.pdserve.launcher.node;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.HexFormat;

/** Cluster tokens generated for a run ({@code pdserve local --api-keys-file}, tests). */
public final class ClusterTokens {
  private ClusterTokens() {}

  /**
   * A fresh cluster token (256 random bits) in a file only this user can read, deleted when this
   * JVM exits: what {@code pdserve local --api-keys-file} gives its nodes.
   */
  public static Path generate() throws IOException {
    byte[] bytes = new byte[32];
    new SecureRandom().nextBytes(bytes);
    Path f;
    try {
      f =
          Files.createTempFile(
              "pdserve-cluster-token-",
              "",
              PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    } catch (UnsupportedOperationException e) {
      f = Files.createTempFile("pdserve-cluster-token-", "");
    }
    f.toFile().deleteOnExit();
    Files.writeString(f, HexFormat.of().formatHex(bytes) + "\n", StandardCharsets.US_ASCII);
    return f;
  }
}
