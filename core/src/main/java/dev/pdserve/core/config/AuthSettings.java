package dev.pdserve.core.config;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * Who may call a node (docs/DEPLOY.md, "API keys").
 *
 * @param apiKeysFile the API keys, one a line ({@code pdserve.auth.api-keys-file}); when set, every
 *     public route (the router's gRPC and HTTP APIs, admin, node status, metrics unless open) needs
 *     {@code Authorization: Bearer KEY}
 * @param clusterTokenFile the cluster token nodes present to each other ({@code
 *     pdserve.auth.cluster-token-file}); when set, node-internal routes (prefill, decode, role
 *     switching, expert dispatch) need it, and this node's clients send its first line
 * @param metricsOpen {@code /metrics} answers without credentials
 * @param healthOpen gRPC health and HTTP {@code /health} answer without credentials
 */
public record AuthSettings(
    Optional<Path> apiKeysFile,
    Optional<Path> clusterTokenFile,
    boolean metricsOpen,
    boolean healthOpen) {
  /** No credentials anywhere (the default). */
  public static final AuthSettings OFF =
      new AuthSettings(Optional.empty(), Optional.empty(), false, true);

  public AuthSettings {
    Objects.requireNonNull(apiKeysFile, "apiKeysFile");
    Objects.requireNonNull(clusterTokenFile, "clusterTokenFile");
  }

  /** Whether any route asks for credentials. */
  public boolean enabled() {
    return apiKeysFile.isPresent() || clusterTokenFile.isPresent();
  }

  /** These settings with the cluster token read from {@code file}. */
  public AuthSettings withClusterTokenFile(Path file) {
    return new AuthSettings(apiKeysFile, Optional.of(file), metricsOpen, healthOpen);
  }
}
