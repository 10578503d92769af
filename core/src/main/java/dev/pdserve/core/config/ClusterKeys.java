package dev.pdserve.core.config;

import java.util.List;

/**
 * Keys for Hazelcast membership: discovery, failure detection, split-brain protection. Part of
 * {@link ConfigKeys}, where every key is listed.
 */
public interface ClusterKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<String> CLUSTER_NAME =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.name",
              ValueType.Text.any("any name"),
              "pdserve",
              "Hazelcast cluster name; members with another name never join each other"));
  ConfigKey<JoinMode> CLUSTER_JOIN =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.join",
              ValueType.Choice.of(JoinMode.class),
              JoinMode.TCPIP,
              "how members find each other: TCPIP (member list), KUBERNETES (DNS of a headless"
                  + " Service) or NONE (a single-member cluster)"));
  ConfigKey<List<HostPort>> CLUSTER_MEMBERS =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.cluster.members",
              new ValueType.HostPorts(),
              "TCPIP: the advertised host, the cluster port and the next "
                  + (NodeConfigLoader.DEFAULT_SEED_PORTS - 1)
                  + " ("
                  + NodeConfigLoader.DEFAULT_CLUSTER_PORT
                  + "-"
                  + (NodeConfigLoader.DEFAULT_CLUSTER_PORT
                      + NodeConfigLoader.DEFAULT_SEED_PORTS
                      - 1)
                  + ")",
              "TCPIP seed members to join, one by one (port ranges are refused)"));
  ConfigKey<String> CLUSTER_K8S_SERVICE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.kubernetes.service",
              ValueType.Text.any("a Service name"),
              "",
              "KUBERNETES join (required there): the headless Service whose DNS lists the"
                  + " members; a bare name is qualified with the namespace"));
  ConfigKey<String> CLUSTER_K8S_NAMESPACE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.kubernetes.namespace",
              ValueType.Text.any("a namespace"),
              "default",
              "namespace of that Service"));
  ConfigKey<Integer> CLUSTER_PORT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.port",
              KeyTypes.PORT,
              NodeConfigLoader.DEFAULT_CLUSTER_PORT,
              "Hazelcast member port (the next ones are tried when it is taken); 0 = any"));
  ConfigKey<Integer> CLUSTER_HEARTBEAT_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.heartbeat-interval-seconds",
              new ValueType.Int(1, 300),
              1,
              "how often members heartbeat each other"));
  ConfigKey<Integer> CLUSTER_MAX_NO_HEARTBEAT_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.max-no-heartbeat-seconds",
              new ValueType.Int(2, 3600),
              5,
              "a member silent this long is removed (a dead or frozen node leaves within ~5 s);"
                  + " above the heartbeat interval"));
  ConfigKey<Integer> CLUSTER_OUTPUT_THREADS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.output-threads",
              new ValueType.Int(1, 256),
              16,
              "Hazelcast I/O threads writing to other members (Hazelcast's default is 3); one per"
                  + " peer up to this many, so a peer that stops reading (a frozen node) cannot"
                  + " hold up the heartbeats to the others (docs/RELIABILITY.md)"));
  ConfigKey<Integer> CLUSTER_JOIN_WAIT_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.join-wait-seconds",
              new ValueType.Int(0, 300),
              2,
              "how long a starting member waits for others before it forms a cluster"));
  ConfigKey<Integer> CLUSTER_MIN_SIZE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.min-size",
              new ValueType.Int(1, 1000),
              1,
              "split-brain protection: below this many members the registry refuses reads and"
                  + " writes; 1 = off"));
  ConfigKey<Boolean> CLUSTER_LITE_MEMBER =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.lite-member",
              KeyTypes.BOOL,
              false,
              "member without registry data (owns no partitions); `pdserve router` sets it true"));
  ConfigKey<FailureDetection.Detector> CLUSTER_FAILURE_DETECTOR =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.failure-detector",
              ValueType.Choice.of(FailureDetection.Detector.class),
              FailureDetection.DEFAULTS.detector(),
              "Hazelcast's heartbeat failure detector: PHI_ACCRUAL (suspicion from the silence"
                  + " against the recent heartbeat intervals, max-no-heartbeat-seconds tolerated;"
                  + " see docs/RELIABILITY.md) or DEADLINE (removed after max-no-heartbeat-seconds"
                  + " of silence)"));
  ConfigKey<Double> CLUSTER_PHI_THRESHOLD =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.phi-threshold",
              new ValueType.NonNegativeDecimal(),
              FailureDetection.DEFAULTS.phiThreshold(),
              "PHI_ACCRUAL: suspicion level at which a silent member is removed"));
  ConfigKey<Integer> CLUSTER_MERGE_INTERVAL_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.merge-interval-seconds",
              new ValueType.Int(1, 3600),
              FailureDetection.DEFAULTS.mergeIntervalSeconds(),
              "how often a cut-off member (a frozen node that woke up alone, the small side of a"
                  + " split) looks for the cluster to merge back into as a new member"));
  ConfigKey<Integer> CLUSTER_QUORUM_WINDOW_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.cluster.quorum-window-seconds",
              new ValueType.Int(1, 86400),
              FailureDetection.DEFAULTS.quorumWindowSeconds(),
              "the coordinator lease may be taken or used only by a side holding a majority of the"
                  + " largest cluster seen within this window (a node alone after a freeze never"
                  + " coordinates)"));
}
