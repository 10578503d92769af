package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.auth.GrpcAuth;
import dev.pdserve.core.auth.Route;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.launcher.cluster.InJvmCluster;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Issue 15: a whole cluster (router, prefill, decode, expert shard) with API keys, the cluster
 * token, and metrics and health closed; every gRPC method of every node's server — enumerated from
 * the servers themselves, so a method added later is walked too — every HTTP path of the router and
 * every node's metrics are refused without credentials and let through with them.
 */
class RouteWalkTest {
  private static final String KEY = "walk-key-7f3a";
  private static InJvmCluster cluster;
  private static String token;
  private static final List<ManagedChannel> channels = new ArrayList<>();
  private static final HttpClient http = HttpClient.newHttpClient();

  private static final MethodDescriptor.Marshaller<byte[]> BYTES =
      new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
          return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
          try {
            return stream.readAllBytes();
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        }
      };

  @BeforeAll
  static void start() throws IOException {
    Path keys = Files.createTempFile("pdserve-walk-keys", "");
    keys.toFile().deleteOnExit();
    Files.writeString(keys, "# walk\nother-key\n" + KEY + "\n");
    Path tokenFile = ClusterTokens.generate();
    token = Files.readString(tokenFile).strip();
    cluster =
        InJvmCluster.start(
            1,
            1,
            1,
            Map.of(
                "auth.api-keys-file",
                keys.toString(),
                "auth.cluster-token-file",
                tokenFile.toString(),
                "auth.metrics-open",
                "false",
                "auth.health-open",
                "false"));
  }

  @AfterAll
  static void stop() {
    channels.forEach(ManagedChannel::shutdownNow);
    if (cluster != null) {
      cluster.close();
    }
  }

  /** Every node's gRPC server, by its address. */
  private static Map<String, GrpcServer> servers() {
    Map<String, GrpcServer> m = new LinkedHashMap<>();
    m.put(cluster.router.grpcAddress(), cluster.router.runtime().server());
    for (WorkerNode w : cluster.prefill) {
      m.put(w.runtime().grpcAddress(), w.runtime().server());
    }
    for (WorkerNode w : cluster.decode) {
      m.put(w.runtime().grpcAddress(), w.runtime().server());
    }
    for (AutoCloseable s : cluster.shards) {
      ExpertNode e = (ExpertNode) s;
      m.put(e.grpcAddress(), e.runtime().server());
    }
    return m;
  }

  private static ManagedChannel channel(String address, String credential) {
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(address).usePlaintext();
    if (credential != null) {
      b.intercept(GrpcAuth.bearer(credential));
    }
    ManagedChannel ch = b.build();
    channels.add(ch);
    return ch;
  }

  /**
   * Calls {@code method} with one empty message: the status it closes with, or OK as soon as the
   * server sends headers (the call reached its handler; a stream such as health Watch stays open).
   */
  private static Status call(ManagedChannel ch, MethodDescriptor<?, ?> method) throws Exception {
    MethodDescriptor<byte[], byte[]> raw =
        MethodDescriptor.<byte[], byte[]>newBuilder()
            .setType(method.getType())
            .setFullMethodName(method.getFullMethodName())
            .setRequestMarshaller(BYTES)
            .setResponseMarshaller(BYTES)
            .build();
    ClientCall<byte[], byte[]> c =
        ch.newCall(raw, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS));
    CompletableFuture<Status> done = new CompletableFuture<>();
    c.start(
        new ClientCall.Listener<>() {
          @Override
          public void onHeaders(Metadata headers) {
            done.complete(Status.OK.withDescription("headers: the handler was reached"));
          }

          @Override
          public void onClose(Status status, Metadata trailers) {
            done.complete(status);
          }
        },
        new Metadata());
    c.request(1);
    c.sendMessage(new byte[0]);
    c.halfClose();
    Status s = done.get(60, TimeUnit.SECONDS);
    c.cancel("route walk: done with this call", null);
    return s;
  }

  private static String name(MethodDescriptor<?, ?> m) {
    return m.getFullMethodName();
  }

  @Test
  void everyGrpcMethodOfEveryNodeIsRefusedWithoutCredentialsAndOpenedByTheRightOne()
      throws Exception {
    Set<String> services = new TreeSet<>();
    int walked = 0;
    for (Map.Entry<String, GrpcServer> e : servers().entrySet()) {
      String address = e.getKey();
      ManagedChannel none = channel(address, null);
      ManagedChannel wrong = channel(address, "not-a-key");
      ManagedChannel key = channel(address, KEY);
      ManagedChannel cluster = channel(address, token);
      for (ServerServiceDefinition svc : e.getValue().services()) {
        String service = svc.getServiceDescriptor().getName();
        services.add(service);
        Route route = GrpcAuth.routeOf(service);
        for (ServerMethodDefinition<?, ?> md : svc.getMethods()) {
          MethodDescriptor<?, ?> m = md.getMethodDescriptor();
          String where = name(m) + " at " + address;
          Status s = call(none, m);
          assertEquals(Status.Code.UNAUTHENTICATED, s.getCode(), where + ": " + s);
          assertFalse(s.getDescription().isEmpty(), where);
          Status w = call(wrong, m);
          assertEquals(Status.Code.UNAUTHENTICATED, w.getCode(), where + ": " + w);
          assertFalse(w.getDescription().contains("not-a-key"), where + " repeats the key");
          Status k = call(key, m);
          if (route == Route.CLUSTER) {
            assertEquals(Status.Code.UNAUTHENTICATED, k.getCode(), where + " opened by a key");
          } else {
            assertNotEquals(Status.Code.UNAUTHENTICATED, k.getCode(), where + ": " + k);
          }
          Status t = call(cluster, m);
          assertNotEquals(Status.Code.UNAUTHENTICATED, t.getCode(), where + ": " + t);
          walked++;
        }
      }
    }
    for (String expected :
        List.of(
            "pdserve.v1.Generation",
            "pdserve.internal.v1.AdminService",
            "pdserve.internal.v1.NodeService",
            "pdserve.internal.v1.PrefillService",
            "pdserve.internal.v1.DecodeService",
            "pdserve.internal.v1.RoleService",
            "pdserve.internal.v1.ExpertService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection")) {
      assertTrue(services.contains(expected), expected + " walked; walked " + services);
    }
    assertTrue(walked >= 30, "methods walked: " + walked);
  }

  @Test
  void generateWorksWithAKeyAndTheRoutersNodeCallsCarryTheClusterToken() {
    GenerateRequest req =
        GenerateRequest.newBuilder()
            .setPrompt("walk the routes")
            .setParams(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(4))
            .build();
    var it =
        GenerationGrpc.newBlockingStub(channel(cluster.router.grpcAddress(), KEY))
            .withDeadlineAfter(120, TimeUnit.SECONDS)
            .generate(req);
    int messages = 0;
    while (it.hasNext()) {
      it.next();
      messages++;
    }
    assertTrue(messages > 0);
    StatusRuntimeException refused =
        org.junit.jupiter.api.Assertions.assertThrows(
            StatusRuntimeException.class,
            () ->
                AdminServiceGrpc.newBlockingStub(channel(cluster.router.grpcAddress(), null))
                    .listNodes(ListNodesRequest.getDefaultInstance()));
    assertEquals(Status.Code.UNAUTHENTICATED, refused.getStatus().getCode());
    assertTrue(refused.getStatus().getDescription().contains("--api-key"));
    assertEquals(
        4,
        AdminServiceGrpc.newBlockingStub(channel(cluster.router.grpcAddress(), KEY))
            .listNodes(ListNodesRequest.getDefaultInstance())
            .getNodesCount(),
        "router, prefill, decode, shard");
  }

  private static HttpResponse<String> send(String method, String url, String credential)
      throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(url)).timeout(java.time.Duration.ofSeconds(120));
    if (method.equals("POST")) {
      b.POST(
              HttpRequest.BodyPublishers.ofString(
                  "{\"prompt\": \"walk\", \"max_tokens\": 2, \"messages\": [{\"role\": \"user\","
                      + " \"content\": \"walk\"}]}"))
          .header("Content-Type", "application/json");
    } else {
      b.GET();
    }
    if (credential != null) {
      b.header("Authorization", "Bearer " + credential);
    }
    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  @Test
  void everyHttpPathIsRefusedWithoutAKeyAndAnswersWithOne() throws Exception {
    String base = cluster.router.httpUrl();
    String model = cluster.router.router().model().name();
    Map<String, String> paths = new LinkedHashMap<>();
    paths.put("/v1/chat/completions", "POST");
    paths.put("/v1/completions", "POST");
    paths.put("/v1/models", "GET");
    paths.put("/v1/models/" + model, "GET");
    paths.put("/health", "GET");
    paths.put("/no/such/path", "GET");
    for (Map.Entry<String, String> p : paths.entrySet()) {
      String url = base + p.getKey();
      for (String bad : new String[] {null, "not-a-key"}) {
        HttpResponse<String> r = send(p.getValue(), url, bad);
        assertEquals(401, r.statusCode(), p + " with " + bad + ": " + r.body());
        assertEquals(
            Optional.of("Bearer realm=\"pdserve\""), r.headers().firstValue("WWW-Authenticate"));
        assertTrue(r.body().contains("invalid_api_key"), r.body());
        assertFalse(r.body().contains("not-a-key"), r.body());
      }
      HttpResponse<String> ok = send(p.getValue(), url, KEY);
      int expected = p.getKey().equals("/no/such/path") ? 404 : 200;
      assertEquals(expected, ok.statusCode(), p + ": " + ok.body());
    }
  }

  @Test
  void everyNodesMetricsNeedAKeyOrTheClusterToken() throws Exception {
    List<String> urls = new ArrayList<>();
    urls.add(cluster.router.metrics().url());
    cluster.prefill.forEach(w -> urls.add(w.runtime().metrics().url()));
    cluster.decode.forEach(w -> urls.add(w.runtime().metrics().url()));
    cluster.shards.forEach(s -> urls.add(((ExpertNode) s).metrics().url()));
    for (String url : urls) {
      HttpResponse<String> r = send("GET", url, null);
      assertEquals(401, r.statusCode(), url);
      assertEquals(
          Optional.of("Bearer realm=\"pdserve\""), r.headers().firstValue("WWW-Authenticate"));
      assertEquals(401, send("GET", url, "not-a-key").statusCode(), url);
      assertEquals(200, send("GET", url, KEY).statusCode(), url);
      assertEquals(200, send("GET", url, token).statusCode(), url);
    }
    assertEquals(4, urls.size());
  }
}
