package dev.pdserve.core.auth;

import com.google.common.base.Ticker;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A file of secrets, one a line (blank lines and lines starting with {@code #} ignored), read again
 * when it changes: at most once every {@code period} of the injected {@link Ticker} a call looks at
 * the file, and a content different from the last read replaces the secrets. A file that becomes
 * unreadable or empty keeps the secrets read before (a warning says so). Kubernetes swaps a mounted
 * Secret's files atomically, so a rotation is seen whole.
 *
 * <p>Only SHA-256 digests of the secrets are kept; {@link #matches} compares a presented secret's
 * digest with every one in constant time (no early exit). Nothing here logs a secret: log lines
 * name the file and count the secrets.
 */
public final class SecretFile {
  private static final Logger LOG = LogManager.getLogger(SecretFile.class);

  /** How often a file is looked at for changes unless a caller chooses. */
  public static final Duration DEFAULT_RELOAD_PERIOD = Duration.ofSeconds(2);

  private final Path path;
  private final String what;
  private final Ticker ticker;
  private final long periodNanos;
  private final AtomicLong lastCheck;
  private volatile Snapshot snapshot;

  private record Snapshot(byte[] fileDigest, List<byte[]> digests, String first) {}

  /**
   * Reads the file now.
   *
   * @param what what the file holds, for messages ({@code "API keys file"})
   * @throws IllegalArgumentException if the file cannot be read or holds no secret
   */
  public SecretFile(Path path, String what, Ticker ticker, Duration period) {
    this.path = path;
    this.what = what;
    this.ticker = ticker;
    this.periodNanos = period.toNanos();
    byte[] content;
    try {
      content = Files.readAllBytes(path);
    } catch (IOException e) {
      throw new IllegalArgumentException(what + " " + path + ": cannot read it (" + e + ")", e);
    }
    Snapshot s = parse(content);
    if (s.digests().isEmpty()) {
      throw new IllegalArgumentException(
          what + " " + path + " holds no secret (one a line; blank lines and # comments ignored)");
    }
    this.snapshot = s;
    this.lastCheck = new AtomicLong(ticker.read());
    LOG.info("{} {}: {} secret(s) read", what, path, s.digests().size());
  }

  public Path path() {
    return path;
  }

  /** Number of secrets now held (after a due reload). */
  public int size() {
    return current().digests().size();
  }

  /** The first secret of the file (what a client presents), after a due reload. */
  public String first() {
    return current().first();
  }

  /** Whether {@code presented} is one of the secrets (after a due reload), in constant time. */
  public boolean matches(String presented) {
    byte[] d = sha256(presented.getBytes(StandardCharsets.UTF_8));
    boolean found = false;
    for (byte[] k : current().digests()) {
      found |= MessageDigest.isEqual(d, k);
    }
    return found;
  }

  private Snapshot current() {
    long now = ticker.read();
    long last = lastCheck.get();
    if (now - last >= periodNanos && lastCheck.compareAndSet(last, now)) {
      reload();
    }
    return snapshot;
  }

  private void reload() {
    byte[] content;
    try {
      content = Files.readAllBytes(path);
    } catch (IOException e) {
      LOG.warn(
          "{} {}: cannot read it ({}); keeping the {} secret(s) read before",
          what,
          path,
          e.getClass().getSimpleName(),
          snapshot.digests().size());
      return;
    }
    Snapshot old = snapshot;
    byte[] fileDigest = sha256(content);
    if (MessageDigest.isEqual(fileDigest, old.fileDigest())) {
      return;
    }
    Snapshot s = parse(content);
    if (s.digests().isEmpty()) {
      LOG.warn(
          "{} {} holds no secret now; keeping the {} secret(s) read before",
          what,
          path,
          old.digests().size());
      return;
    }
    snapshot = s;
    LOG.info("{} {} changed: {} secret(s) now", what, path, s.digests().size());
  }

  private static Snapshot parse(byte[] content) {
    List<byte[]> digests = new ArrayList<>();
    String first = "";
    for (String line : new String(content, StandardCharsets.UTF_8).split("\r?\n")) {
      String s = line.strip();
      if (s.isEmpty() || s.startsWith("#")) {
        continue;
      }
      if (digests.isEmpty()) {
        first = s;
      }
      digests.add(sha256(s.getBytes(StandardCharsets.UTF_8)));
    }
    return new Snapshot(sha256(content), List.copyOf(digests), first);
  }

  private static byte[] sha256(byte[] bytes) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(bytes);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JVM", e);
    }
  }

  @Override
  public String toString() {
    return what + " " + path;
  }
}
