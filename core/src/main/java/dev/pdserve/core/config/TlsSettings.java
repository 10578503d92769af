package dev.pdserve.core.config;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

/**
 * TLS of one kind of connection, from files (Kubernetes secrets): the cluster's mutual TLS between
 * nodes ({@code pdserve.tls.*}) or the router's public APIs ({@code pdserve.router.tls.*}).
 *
 * @param enabled TLS on; when off the other fields are unused
 * @param cert the certificate chain presented, PEM
 * @param key its private key, PEM
 * @param ca the CA a peer's certificate must chain to: required between nodes; on the public APIs,
 *     when present, clients must present a certificate it signed
 * @param reloadInterval how often the files are read again; zero: never
 */
public record TlsSettings(
    boolean enabled,
    Optional<Path> cert,
    Optional<Path> key,
    Optional<Path> ca,
    Duration reloadInterval) {
  public static final Duration DEFAULT_RELOAD_INTERVAL = Duration.ofSeconds(60);
  public static final TlsSettings DISABLED =
      new TlsSettings(
          false, Optional.empty(), Optional.empty(), Optional.empty(), DEFAULT_RELOAD_INTERVAL);

  public TlsSettings {
    if (reloadInterval == null || reloadInterval.isNegative()) {
      throw new IllegalArgumentException("reload interval must be >= 0, got " + reloadInterval);
    }
    if (enabled && (cert.isEmpty() || key.isEmpty())) {
      throw new IllegalArgumentException("TLS needs a certificate and a key file");
    }
  }

  /** Mutual TLS with {@code cert}, {@code key} and the CA {@code ca}, reloaded every minute. */
  public static TlsSettings mutual(Path cert, Path key, Path ca) {
    return new TlsSettings(
        true, Optional.of(cert), Optional.of(key), Optional.of(ca), DEFAULT_RELOAD_INTERVAL);
  }

  public TlsSettings withReloadInterval(Duration interval) {
    return new TlsSettings(enabled, cert, key, ca, interval);
  }

  /**
   * The TLS of a node: between nodes ({@code cluster}) and on the router's public APIs.
   *
   * @param cluster mutual TLS of gRPC, Flight and expert dispatch between nodes
   * @param publicApi the router's public gRPC and HTTP APIs
   */
  public record Node(TlsSettings cluster, TlsSettings publicApi) {
    public static final Node DISABLED = new Node(TlsSettings.DISABLED, TlsSettings.DISABLED);
  }
}
