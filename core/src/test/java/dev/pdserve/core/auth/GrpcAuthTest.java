package dev.pdserve.core.auth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.config.AuthSettings;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.core.metrics.NodeMetrics;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.RoleServiceGrpc;
import dev.pdserve.internal.v1.StatusRequest;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real Netty gRPC server on port 0 and a real metrics endpoint behind an {@link AccessControl}.
 */
class GrpcAuthTest {
  @TempDir Path dir;
  private final List<AutoCloseable> open = new ArrayList<>();
  private AccessControl access;
  private GrpcServer server;
  private String address;

  /** A node-internal service: answers OK when reached. */
  private static final class Role extends RoleServiceGrpc.RoleServiceImplBase {
    @Override
    public void switchRole(SwitchRoleRequest req, StreamObserver<SwitchRoleResponse> out) {
      out.onNext(SwitchRoleResponse.getDefaultInstance());
      out.onCompleted();
    }
  }

  @BeforeEach
  void start() throws IOException {
    Path keys = Files.writeString(dir.resolve("keys"), "user-key\n");
    Path token = Files.writeString(dir.resolve("token"), "node-token\n");
    access =
        AccessControl.of(
            new AuthSettings(Optional.of(keys), Optional.of(token), false, true), new FakeTicker());
    server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .addService(new NodeStatusService(() -> NodeStatus.newBuilder().setId("n1").build()))
            .addService(new Role())
            .healthService("pdserve.test")
            .intercept(GrpcAuth.serverInterceptor(access))
            .build()
            .start();
    open.add(server);
    address = "127.0.0.1:" + server.port();
  }

  @AfterEach
  void close() throws Exception {
    for (AutoCloseable c : open) {
      c.close();
    }
  }

  private ManagedChannel channel(String credential) {
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(address).usePlaintext();
    if (credential != null) {
      b.intercept(GrpcAuth.bearer(credential));
    }
    ManagedChannel ch = b.build();
    open.add(0, ch::shutdownNow);
    return ch;
  }

  private static Status statusOf(Runnable call) {
    try {
      call.run();
      return Status.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus();
    }
  }

  @Test
  void publicServiceNeedsAKeyOrTheToken() {
    StatusRequest req = StatusRequest.getDefaultInstance();
    Status none = statusOf(() -> NodeServiceGrpc.newBlockingStub(channel(null)).status(req));
    assertEquals(Status.Code.UNAUTHENTICATED, none.getCode());
    assertEquals(AccessControl.MISSING_KEY, none.getDescription());
    Status wrong = statusOf(() -> NodeServiceGrpc.newBlockingStub(channel("guess")).status(req));
    assertEquals(Status.Code.UNAUTHENTICATED, wrong.getCode());
    assertFalse(wrong.getDescription().contains("guess"));
    assertEquals("n1", NodeServiceGrpc.newBlockingStub(channel("user-key")).status(req).getId());
    assertEquals("n1", NodeServiceGrpc.newBlockingStub(channel("node-token")).status(req).getId());
  }

  @Test
  void internalServiceNeedsTheClusterTokenNotAnApiKey() {
    SwitchRoleRequest req = SwitchRoleRequest.getDefaultInstance();
    assertEquals(
        Status.Code.UNAUTHENTICATED,
        statusOf(() -> RoleServiceGrpc.newBlockingStub(channel(null)).switchRole(req)).getCode());
    Status key =
        statusOf(() -> RoleServiceGrpc.newBlockingStub(channel("user-key")).switchRole(req));
    assertEquals(Status.Code.UNAUTHENTICATED, key.getCode());
    assertEquals(AccessControl.WRONG_TOKEN, key.getDescription());

    // What a node's clients do: Channels with the cluster credentials.
    Channels channels =
        new Channels(Channels.Settings.defaults(), GrpcAuth.clusterCredentials(access));
    open.add(0, channels);
    assertEquals(
        SwitchRoleResponse.getDefaultInstance(),
        RoleServiceGrpc.newBlockingStub(channels.get(address)).switchRole(req));
  }

  @Test
  void healthIsOpenByDefault() {
    var resp =
        HealthGrpc.newBlockingStub(channel(null))
            .check(HealthCheckRequest.newBuilder().setService("pdserve.test").build());
    assertEquals("SERVING", resp.getStatus().name());
  }

  @Test
  void everyServiceOfTheServerIsClassified() {
    for (var s : server.services()) {
      String name = s.getServiceDescriptor().getName();
      Route r = GrpcAuth.routeOf(name);
      switch (name) {
        case "grpc.health.v1.Health" -> assertEquals(Route.HEALTH, r);
        case "pdserve.internal.v1.RoleService" -> assertEquals(Route.CLUSTER, r);
        default -> assertEquals(Route.PUBLIC, r, name);
      }
    }
    assertEquals(Route.CLUSTER, GrpcAuth.routeOf("pdserve.internal.v1.SomethingNew"));
  }

  @Test
  void metricsNeedAKeyUnlessOpen() throws Exception {
    NodeMetrics metrics = new NodeMetrics("m1", "127.0.0.1", "127.0.0.1", 0, "tiny");
    open.add(0, metrics);
    metrics.protectWith(access).start();
    HttpClient http = HttpClient.newHttpClient();
    HttpResponse<String> refused =
        http.send(
            HttpRequest.newBuilder(URI.create(metrics.url())).build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(401, refused.statusCode());
    assertEquals(
        Optional.of(AccessControl.CHALLENGE), refused.headers().firstValue("WWW-Authenticate"));
    assertTrue(refused.body().contains("API key"), refused.body());
    HttpResponse<String> ok =
        http.send(
            HttpRequest.newBuilder(URI.create(metrics.url()))
                .header("Authorization", "Bearer user-key")
                .build(),
            HttpResponse.BodyHandlers.ofString());
    assertEquals(200, ok.statusCode());
    String healthy = metrics.url().replace("/metrics", "/-/healthy");
    assertEquals(
        200,
        http.send(
                HttpRequest.newBuilder(URI.create(healthy)).build(),
                HttpResponse.BodyHandlers.ofString())
            .statusCode(),
        "health open");
  }
}
