package dev.pdserve.launcher.node;

import java.util.List;
import java.util.Map;

/**
 * The {@code pdserve} command line of each node of a {@link LocalCluster.Spec}: the node JVM, its
 * role's subcommand, loopback addresses, the Hazelcast member list, the model, the thread split and
 * the spec's own settings.
 *
 * @param spec what the cluster runs
 * @param clusterName the Hazelcast cluster name every node joins
 * @param members the Hazelcast member list, {@code 127.0.0.1:port,...}
 */
public record LocalNodeCommand(LocalCluster.Spec spec, String clusterName, String members) {
  /** Experts are split over this many expert indices. */
  private static final int EXPERTS = 64;

  /**
   * The command of node {@code id} in {@code role} ({@code router}, {@code prefill}, {@code decode}
   * or {@code expert}); {@code expertIndex} says which range an expert shard hosts.
   */
  public List<String> forNode(String id, String role, int expertIndex, int clusterPort) {
    List<String> cmd = NodeJvm.nodeJavaCommand(spec.heap(), spec.logLevel());
    switch (role) {
      case "expert" -> {
        cmd.add("expert");
        int per = EXPERTS / spec.experts();
        int first = expertIndex * per;
        int last = expertIndex == spec.experts() - 1 ? EXPERTS - 1 : first + per - 1;
        cmd.add("--experts");
        cmd.add(first + "-" + last);
      }
      case "prefill", "decode" -> {
        cmd.add("worker");
        cmd.add("--role");
        cmd.add(role);
        cmd.add("--experts-mode");
        cmd.add(spec.experts() > 0 ? "remote" : "local");
        cmd.add("--kv-budget");
        cmd.add(spec.kvBudget());
      }
      default -> cmd.add("router");
    }
    cmd.addAll(
        List.of(
            "--node-id",
            id,
            "--bind",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--flight-port",
            "0",
            "--metrics-port",
            "0",
            "--cluster-name",
            clusterName,
            "--cluster-port",
            Integer.toString(clusterPort),
            "--members",
            members,
            "--seed-weights",
            Long.toString(spec.seed())));
    if (spec.modelDir() != null) {
      cmd.add("--model");
      cmd.add(spec.modelDir());
    } else {
      cmd.add("--preset");
      cmd.add(spec.preset());
    }
    if (spec.setting("ort.threads") == null) {
      // the nodes share this machine's cores: split them instead of every node taking all
      int compute = spec.prefill() + spec.decode() + spec.experts();
      cmd.add("--ort-threads");
      cmd.add(Integer.toString(Math.max(1, Runtime.getRuntime().availableProcessors() / compute)));
    }
    if (spec.setting("shutdown.timeout-seconds") == null) {
      // drain within the grace period close() gives every child before killing it
      cmd.add("--shutdown-timeout");
      cmd.add(LocalCluster.LOCAL_SHUTDOWN_TIMEOUT.toMillis() + "ms");
    }
    for (Map.Entry<String, String> e : spec.settings().entrySet()) {
      cmd.add("--set");
      cmd.add(e.getKey() + "=" + e.getValue());
    }
    return cmd;
  }
}
