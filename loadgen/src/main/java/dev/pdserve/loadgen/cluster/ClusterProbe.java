package dev.pdserve.loadgen.cluster;

import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.loadgen.ApiKey;
import dev.pdserve.loadgen.ClientTls;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Looks at the cluster from outside, before and after a run: the router's {@code
 * pdserve.internal.v1.AdminService/ListNodes} for nodes per role, and each node's {@code
 * metrics_url} (Prometheus text) when it has one.
 */
public final class ClusterProbe implements AutoCloseable {
  private final String adminAddress;
  private final ManagedChannel channel;
  private final ApiKey apiKey;
  private final HttpClient http;

  public ClusterProbe(String adminAddress) {
    this(adminAddress, ApiKey.NONE);
  }

  /** As above, the admin calls and metrics reads presenting {@code apiKey}. */
  public ClusterProbe(String adminAddress, ApiKey apiKey) {
    this(adminAddress, apiKey, ClientTls.PLAINTEXT);
  }

  /** As above, the admin channel (and {@code https://} metrics URLs) over {@code tls}. */
  public ClusterProbe(String adminAddress, ApiKey apiKey, ClientTls tls) {
    this.adminAddress = adminAddress;
    this.apiKey = apiKey;
    this.channel =
        NettyChannelBuilder.forTarget(adminAddress, tls.grpc())
            .intercept(apiKey.interceptor())
            .build();
    HttpClient.Builder client =
        HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5));
    tls.https().ifPresent(client::sslContext);
    this.http = client.build();
  }

  public String adminAddress() {
    return adminAddress;
  }

  public ClusterSnapshot snapshot() {
    List<NodeStatus> listed;
    try {
      listed =
          AdminServiceGrpc.newBlockingStub(channel)
              .withDeadlineAfter(10, TimeUnit.SECONDS)
              .listNodes(ListNodesRequest.getDefaultInstance())
              .getNodesList();
    } catch (StatusRuntimeException e) {
      return new ClusterSnapshot(
          List.of(),
          Map.of(),
          "ListNodes at "
              + adminAddress
              + " failed: "
              + e.getStatus().getCode()
              + ": "
              + e.getStatus().getDescription(),
          Map.of());
    }
    List<ClusterSnapshot.Node> nodes = new ArrayList<>();
    Map<String, Map<String, Double>> metrics = new LinkedHashMap<>();
    Map<String, String> errors = new LinkedHashMap<>();
    for (NodeStatus n : listed) {
      nodes.add(new ClusterSnapshot.Node(n.getId(), n.getRole(), n.getState(), n.getMetricsUrl()));
      if (n.getMetricsUrl().isEmpty()) {
        continue;
      }
      try {
        HttpResponse<String> r =
            http.send(
                apiKey
                    .apply(HttpRequest.newBuilder(URI.create(n.getMetricsUrl())))
                    .timeout(Duration.ofSeconds(10))
                    .GET()
                    .build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() == 200) {
          metrics.put(n.getId(), PrometheusText.sumByName(r.body()));
        } else {
          errors.put(n.getId(), n.getMetricsUrl() + " answered HTTP " + r.statusCode());
        }
      } catch (IOException | IllegalArgumentException e) {
        errors.put(n.getId(), n.getMetricsUrl() + ": " + e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        errors.put(n.getId(), "interrupted");
      }
    }
    return new ClusterSnapshot(nodes, metrics, null, errors);
  }

  @Override
  public void close() {
    channel.shutdownNow();
  }
}
