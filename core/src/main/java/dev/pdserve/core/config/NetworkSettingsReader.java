package dev.pdserve.core.config;

import static dev.pdserve.core.config.ConfigKeys.ADVERTISED_HOST;
import static dev.pdserve.core.config.ConfigKeys.BIND_HOST;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_FAILURE_DETECTOR;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_HEARTBEAT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_JOIN;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_JOIN_WAIT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_K8S_NAMESPACE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_K8S_SERVICE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_LITE_MEMBER;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MAX_NO_HEARTBEAT_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MEMBERS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MERGE_INTERVAL_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_MIN_SIZE;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_NAME;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_OUTPUT_THREADS;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_PHI_THRESHOLD;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_PORT;
import static dev.pdserve.core.config.ConfigKeys.CLUSTER_QUORUM_WINDOW_SECONDS;
import static dev.pdserve.core.config.ConfigKeys.FLIGHT_PORT;
import static dev.pdserve.core.config.ConfigKeys.GRPC_HEALTH_PORT;
import static dev.pdserve.core.config.ConfigKeys.GRPC_MAX_INBOUND_BYTES;
import static dev.pdserve.core.config.ConfigKeys.GRPC_PORT;
import static dev.pdserve.core.config.ConfigKeys.HTTP_MAX_BODY_BYTES;
import static dev.pdserve.core.config.ConfigKeys.HTTP_PORT;
import static dev.pdserve.core.config.ConfigKeys.METRICS_PORT;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Reads where a node listens and how it joins the cluster out of {@link ConfigValues} for {@link
 * SettingsReader}: the host and port keys of {@link NodeKeys} and the {@link ClusterKeys}, with the
 * rules between them (ports that must differ, an advertised host for a wildcard bind, a heartbeat
 * bound above the interval). Problems are recorded in the values, each naming its key.
 */
final class NetworkSettingsReader {
  private final ConfigValues values;

  NetworkSettingsReader(ConfigValues values) {
    this.values = values;
  }

  NetworkSettings network() {
    String bindHost = values.get(BIND_HOST);
    Optional<String> advertised = values.find(ADVERTISED_HOST);
    if (advertised.isEmpty() && isWildcard(bindHost)) {
      values.fail(
          ADVERTISED_HOST,
          "required when "
              + BIND_HOST
              + " is a wildcard address ("
              + bindHost
              + "); set it to the address other nodes reach this one at (e.g. the pod IP)");
    }
    int grpcPort = values.get(GRPC_PORT);
    int flightPort = values.get(FLIGHT_PORT);
    int metricsPort = values.get(METRICS_PORT);
    int httpPort = values.get(HTTP_PORT);
    distinctPorts(grpcPort, flightPort, metricsPort, httpPort);
    Optional<Integer> healthPort = values.find(GRPC_HEALTH_PORT);
    healthPort
        .filter(
            p -> p != 0 && (p == grpcPort || p == flightPort || p == metricsPort || p == httpPort))
        .ifPresent(
            p ->
                values.fail(
                    GRPC_HEALTH_PORT,
                    "must differ from the gRPC, Flight, metrics and HTTP ports (" + p + ")"));
    long maxInbound = values.get(GRPC_MAX_INBOUND_BYTES);
    long maxBody = values.get(HTTP_MAX_BODY_BYTES);
    return new NetworkSettings(
        bindHost,
        advertised.orElse(bindHost),
        grpcPort,
        flightPort,
        metricsPort,
        (int) maxInbound,
        httpPort,
        (int) maxBody,
        healthPort);
  }

  private void distinctPorts(int grpc, int flight, int metrics, int http) {
    if (grpc != 0 && grpc == flight) {
      values.fail(FLIGHT_PORT, "must differ from " + GRPC_PORT + " (both " + grpc + ")");
    }
    if (metrics != 0 && (metrics == grpc || metrics == flight)) {
      values.fail(METRICS_PORT, "must differ from the gRPC and Flight ports (" + metrics + ")");
    }
    if (http != 0 && (http == grpc || http == flight || http == metrics)) {
      values.fail(HTTP_PORT, "must differ from the gRPC, Flight and metrics ports (" + http + ")");
    }
  }

  ClusterSettings cluster(String advertisedHost) {
    String name = values.get(CLUSTER_NAME);
    JoinMode join = values.get(CLUSTER_JOIN);
    int port = values.get(CLUSTER_PORT);
    List<HostPort> members =
        values.find(CLUSTER_MEMBERS).orElseGet(() -> defaultSeeds(join, advertisedHost, port));
    String k8sService = values.get(CLUSTER_K8S_SERVICE);
    String k8sNamespace = values.get(CLUSTER_K8S_NAMESPACE);
    if (join == JoinMode.KUBERNETES && k8sService.isEmpty()) {
      values.fail(
          CLUSTER_K8S_SERVICE,
          "required when " + CLUSTER_JOIN + " is KUBERNETES (the headless Service name)");
    }
    int heartbeat = values.get(CLUSTER_HEARTBEAT_SECONDS);
    int maxNoHeartbeat = values.get(CLUSTER_MAX_NO_HEARTBEAT_SECONDS);
    if (maxNoHeartbeat <= heartbeat) {
      values.fail(
          CLUSTER_MAX_NO_HEARTBEAT_SECONDS,
          "must be greater than "
              + CLUSTER_HEARTBEAT_SECONDS
              + " ("
              + heartbeat
              + "), got "
              + maxNoHeartbeat);
    }
    return new ClusterSettings(
        name,
        join,
        members,
        k8sService,
        k8sNamespace,
        port,
        heartbeat,
        maxNoHeartbeat,
        values.get(CLUSTER_JOIN_WAIT_SECONDS),
        values.get(CLUSTER_MIN_SIZE),
        values.get(CLUSTER_LITE_MEMBER),
        new FailureDetection(
            values.get(CLUSTER_FAILURE_DETECTOR),
            values.get(CLUSTER_PHI_THRESHOLD),
            values.get(CLUSTER_MERGE_INTERVAL_SECONDS),
            values.get(CLUSTER_QUORUM_WINDOW_SECONDS)),
        values.get(CLUSTER_OUTPUT_THREADS));
  }

  /** TCPIP without a member list: the cluster port and the next ones on this node's host. */
  private static List<HostPort> defaultSeeds(JoinMode join, String host, int clusterPort) {
    List<HostPort> seeds = new ArrayList<>();
    if (join == JoinMode.TCPIP && clusterPort != 0) {
      int end = Math.min(clusterPort + NodeConfigLoader.DEFAULT_SEED_PORTS - 1, 65535);
      for (int p = clusterPort; p <= end; p++) {
        seeds.add(new HostPort(host, p));
      }
    }
    return seeds;
  }

  private static boolean isWildcard(String host) {
    try {
      return InetAddress.getByName(host).isAnyLocalAddress();
    } catch (Exception e) {
      return false;
    }
  }
}
