package dev.pdserve.core.auth;

/** What kind of endpoint a call reaches, deciding which credentials it needs. */
public enum Route {
  /**
   * A public API (router gRPC and HTTP, admin, node status, reflection): an API key, or the cluster
   * token, when API keys are configured.
   */
  PUBLIC,
  /**
   * A node-internal API (prefill, decode, role switching, expert dispatch, KV pushes): only the
   * cluster token, when one is configured.
   */
  CLUSTER,
  /** {@code /metrics}: open when {@code pdserve.auth.metrics-open}, else as {@link #PUBLIC}. */
  METRICS,
  /** gRPC health and HTTP {@code /health}: open when {@code pdserve.auth.health-open}. */
  HEALTH
}
