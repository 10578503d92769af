package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.core.tls.CertificateAuthority;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 15: a whole cluster (1 prefill, 1 decode, 2 expert shards, router) with mutual TLS between
 * every node — node gRPC, the KV push over Flight, expert dispatch — and TLS on the router's public
 * gRPC and HTTP APIs, from a throw-away CA ({@code pdserve local --tls}'s files): greedy outputs
 * still equal the reference engine's, token for token; plaintext clients are refused everywhere.
 */
class TlsClusterTest {
  @TempDir static Path dir;
  static ReferenceEngine reference;
  static LoadedModel model;

  @BeforeAll
  static void loadReference() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void close() {
    reference.close();
    model.close();
  }

  static Map<String, String> tlsSettings(CertificateAuthority.LocalFiles f) {
    return Map.of(
        "tls.enabled", "true",
        "tls.cert", f.cert().toString(),
        "tls.key", f.key().toString(),
        "tls.ca", f.ca().toString(),
        "router.tls.enabled", "true");
  }

  @Test
  void clusterWithMutualTlsMatchesReferenceAndRefusesPlaintext() throws Exception {
    CertificateAuthority.LocalFiles f = CertificateAuthority.writeLocalCluster(dir);
    TransportSecurity client =
        TransportSecurity.client(Optional.of(f.ca()), Optional.empty(), Optional.empty());
    try (InJvmCluster c = InJvmCluster.start(1, 1, 2, tlsSettings(f), client)) {
      for (GenerateRequest r : ClusterMatchesReferenceTest.prompts()) {
        InJvmCluster.Result got = c.generate(r);
        assertNotNull(got.completion(), r.getRequestId() + " ended without a completion");
        assertArrayEquals(
            ClusterMatchesReferenceTest.expected(reference, r),
            got.tokenIds(),
            "cluster tokens over TLS differ from the reference for " + r.getRequestId());
      }
      c.awaitNoKvHeld();

      GenerateRequest one = ClusterMatchesReferenceTest.prompts().get(0);
      assertPlaintextRefused(
          c.router.grpcAddress(),
          ch ->
              GenerationGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(10, TimeUnit.SECONDS)
                  .generate(one)
                  .hasNext());
      WorkerNode decode = c.decode.get(0);
      assertPlaintextRefused(
          decode.grpcAddress(),
          ch ->
              HealthGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(10, TimeUnit.SECONDS)
                  .check(HealthCheckRequest.getDefaultInstance()));

      assertTrue(c.router.httpUrl().startsWith("https://"), c.router.httpUrl());
      HttpResponse<String> models =
          HttpClient.newBuilder()
              .sslContext(trusting(f.ca()))
              .build()
              .send(
                  HttpRequest.newBuilder(URI.create(c.router.httpUrl() + "/v1/models")).build(),
                  HttpResponse.BodyHandlers.ofString());
      assertEquals(200, models.statusCode(), models.body());
      assertThrows(
          IOException.class,
          () ->
              HttpClient.newBuilder()
                  .connectTimeout(Duration.ofSeconds(10))
                  .build()
                  .send(
                      HttpRequest.newBuilder(
                              URI.create("http://" + c.router.httpAddress() + "/v1/models"))
                          .timeout(Duration.ofSeconds(10))
                          .build(),
                      HttpResponse.BodyHandlers.ofString()),
          "plaintext HTTP to the HTTPS port got an answer");
    }
  }

  private static void assertPlaintextRefused(
      String address, java.util.function.Consumer<ManagedChannel> call) {
    ManagedChannel plain = NettyChannelBuilder.forTarget(address).usePlaintext().build();
    try {
      StatusRuntimeException e =
          assertThrows(StatusRuntimeException.class, () -> call.accept(plain));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), address + ": " + e);
    } finally {
      plain.shutdownNow();
    }
  }

  static SSLContext trusting(Path caFile) throws Exception {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    trust.setCertificateEntry("ca", dev.pdserve.core.tls.PemFiles.certificates(caFile).get(0));
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, tmf.getTrustManagers(), null);
    return ctx;
  }
}
