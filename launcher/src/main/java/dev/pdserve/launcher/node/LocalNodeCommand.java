package dev.pdserve.launcher.node;

import dev.pdserve.core.config.NodeConfigLoader;
import java.util.List;
import java.util.Map;

/**
 * The {@code pdserve} command line of each node of a {@link LocalCluster.Spec}: the node JVM, its
 * role's subcommand, loopback addresses, the Hazelcast member list, the model, the thread split and
 * the spec's own settings, and a heartbeat tolerance for many JVMs on one machine ({@link
 * #LOCAL_MAX_NO_HEARTBEAT_SECONDS}) unless the spec or the environment sets one (or the spec sets
 * the heartbeat interval).
 *
 * @param spec what the cluster runs
 * @param clusterName the Hazelcast cluster name every node joins
 * @param members the Hazelcast member list, {@code 127.0.0.1:port,...}
 */
public record LocalNodeCommand(LocalCluster.Spec spec, String clusterName, String members) {
  /** Experts are split over this many expert indices. */
  private static final int EXPERTS = 64;

  static final String MAX_NO_HEARTBEAT = "pdserve.cluster.max-no-heartbeat-seconds";

  /**
   * The heartbeat silence a local cluster's members tolerate unless told otherwise (the default
   * elsewhere is 5 s). Every node of a local cluster shares one machine's cores: there, at 5 s, a
   * frozen member's removal was followed by healthy members splitting off for seconds in 7 of 7
   * freezes of the fault suite, at 10 s in none of 5, for a freeze found in ~13 s instead of ~7 s
   * (docs/RELIABILITY.md "Runs of 4 December"). Requests do not wait for it: the router moves a
   * silent node's streams after its own stream-silence bound.
   */
  static final int LOCAL_MAX_NO_HEARTBEAT_SECONDS = 10;

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
    if (spec.setting("cluster.max-no-heartbeat-seconds") == null
        && spec.setting("cluster.heartbeat-interval-seconds") == null
        && System.getenv(NodeConfigLoader.environmentVariable(MAX_NO_HEARTBEAT)) == null) {
      cmd.add("--set");
      cmd.add(MAX_NO_HEARTBEAT + "=" + LOCAL_MAX_NO_HEARTBEAT_SECONDS);
    }
    for (Map.Entry<String, String> e : spec.settings().entrySet()) {
      cmd.add("--set");
      cmd.add(e.getKey() + "=" + e.getValue());
    }
    return cmd;
  }
}
