package dev.pdserve.core.config;

import java.util.List;

/**
 * Hazelcast membership of a node.
 *
 * @param name cluster name; members with a different name never join each other
 * @param join how members find each other
 * @param members TCPIP seed members, one {@code host:port} each
 * @param kubernetesService DNS name of the headless Service (KUBERNETES join); a bare name is
 *     qualified with the namespace
 * @param kubernetesNamespace namespace of that Service
 * @param port Hazelcast member port (auto-incremented when taken); 0 = any free port
 * @param heartbeatIntervalSeconds how often members heartbeat each other
 * @param maxNoHeartbeatSeconds a member silent this long is removed from the cluster
 * @param joinWaitSeconds how long a starting member waits for others before forming a cluster
 * @param minClusterSize split-brain protection: below this many members the registry maps refuse
 *     reads and writes; 1 turns protection off
 * @param liteMember join as a lite member (owns no partitions; suits routers)
 * @param failureDetection the failure detector, merge and quorum settings (issue 14)
 * @param outputThreads Hazelcast I/O threads writing to other members
 */
public record ClusterSettings(
    String name,
    JoinMode join,
    List<HostPort> members,
    String kubernetesService,
    String kubernetesNamespace,
    int port,
    int heartbeatIntervalSeconds,
    int maxNoHeartbeatSeconds,
    int joinWaitSeconds,
    int minClusterSize,
    boolean liteMember,
    FailureDetection failureDetection,
    int outputThreads) {

  public ClusterSettings {
    members = List.copyOf(members);
  }

  /** The fully qualified DNS name Hazelcast resolves in KUBERNETES mode. */
  public String kubernetesServiceDns() {
    if (kubernetesService.contains(".")) {
      return kubernetesService;
    }
    return kubernetesService + "." + kubernetesNamespace + ".svc.cluster.local";
  }
}
