package dev.pdserve.launcher.k8s;

import dev.pdserve.core.config.NodeRole;

/** The grpc.health.v1 service a node of a role reports SERVING while it is ready for work. */
final class HealthNames {
  private HealthNames() {}

  /** Workers: the role-agnostic name (their role changes at run time); others: their role's. */
  static String readiness(NodeRole role) {
    return switch (role) {
      case PREFILL, DECODE -> NodeRole.WORKER_HEALTH_SERVICE;
      default -> role.healthServiceName();
    };
  }
}
