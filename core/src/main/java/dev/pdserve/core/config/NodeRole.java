package dev.pdserve.core.config;

import java.util.Locale;

/**
 * What a pdserve process does in the cluster. A worker's role can change at run time (DESIGN §5).
 */
public enum NodeRole {
  /** Public API, admission, P/D selection, request lifecycle. */
  ROUTER,
  /** Runs prompts and streams their KV to a decode node. */
  PREFILL,
  /** Continuous-batching token generation. */
  DECODE,
  /** Hosts a subset of the routed experts of every MoE layer. */
  EXPERT;

  /**
   * The grpc.health.v1 service name every worker reports SERVING from when it is registered ACTIVE
   * until it starts shutting down, whatever its role (prefill or decode) and through role switches:
   * what Kubernetes readiness and startup probes of worker pods ask for.
   */
  public static final String WORKER_HEALTH_SERVICE = "pdserve.worker";

  /** The grpc.health.v1 service name a node of this role reports, e.g. {@code pdserve.prefill}. */
  public String healthServiceName() {
    return "pdserve." + name().toLowerCase(Locale.ROOT);
  }

  /** Parses a role name case-insensitively; the message lists the valid names. */
  public static NodeRole parse(String text) {
    for (NodeRole r : values()) {
      if (r.name().equalsIgnoreCase(text.trim())) {
        return r;
      }
    }
    throw new IllegalArgumentException(
        "must be one of ROUTER, PREFILL, DECODE, EXPERT, got '" + text + "'");
  }
}
