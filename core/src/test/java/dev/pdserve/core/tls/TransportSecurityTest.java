package dev.pdserve.core.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigException;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.config.TlsSettings;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.core.grpc.NodeStatusService;
import dev.pdserve.internal.v1.NodeServiceGrpc;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.StatusRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutual TLS between nodes on real Netty gRPC servers on 127.0.0.1:0: a cluster member gets in, a
 * plaintext client or one holding another CA's certificate does not, and a rotated certificate is
 * presented to new connections after a reload, without a restart.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TransportSecurityTest {
  @TempDir Path dir;
  private final List<AutoCloseable> open = new ArrayList<>();

  @AfterEach
  void closeAll() throws Exception {
    for (int i = open.size() - 1; i >= 0; i--) {
      open.get(i).close();
    }
  }

  private <T extends AutoCloseable> T closeLater(T t) {
    open.add(t);
    return t;
  }

  private GrpcServer server(TransportSecurity security) throws Exception {
    return closeLater(
        GrpcServer.forAddress("127.0.0.1", 0, security).healthService("probe").build().start());
  }

  private ServingStatus health(GrpcServer server, TransportSecurity client) {
    Channels channels = closeLater(new Channels(Channels.Settings.defaults().withSecurity(client)));
    return HealthGrpc.newBlockingStub(channels.get("127.0.0.1:" + server.port()))
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .check(HealthCheckRequest.newBuilder().setService("probe").build())
        .getStatus();
  }

  @Test
  void clusterMembersReachEachOtherOverMutualTls() throws Exception {
    TestPki pki = new TestPki(dir, "cluster");
    TransportSecurity a = closeLater(TransportSecurity.cluster(pki.node("a"), "a"));
    TransportSecurity b = closeLater(TransportSecurity.cluster(pki.node("b"), "b"));
    assertTrue(a.requiresClientCertificates());
    assertEquals(ServingStatus.SERVING, health(server(a), b));
  }

  @Test
  void plaintextHealthPortAnswersProbesOfAMutualTlsNodeAndNothingElse() throws Exception {
    TestPki pki = new TestPki(dir, "cluster");
    NodeConfig config =
        NodeConfigLoader.fromMap(
            Map.of("role", "decode", "node.id", "d1", "grpc.health-port", "0"));
    String role = NodeRole.DECODE.healthServiceName();
    GrpcServer server =
        closeLater(
            GrpcServer.forNode(config, closeLater(TransportSecurity.cluster(pki.node("d1"), "d1")))
                .addService(new NodeStatusService(() -> NodeStatus.getDefaultInstance()))
                .build()
                .start());
    assertTrue(server.healthPort() > 0 && server.healthPort() != server.port());
    ManagedChannel probe =
        NettyChannelBuilder.forAddress("127.0.0.1", server.healthPort()).usePlaintext().build();
    ManagedChannel plainToMain =
        NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
    try {
      // What a kubelet gRPC probe (plaintext, no certificate) sees on each port:
      assertEquals(ServingStatus.SERVING, check(probe, role));
      assertEquals(ServingStatus.SERVING, check(probe, ""));
      StatusRuntimeException refused =
          assertThrows(StatusRuntimeException.class, () -> check(plainToMain, role));
      assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode(), refused.toString());
      // Only health on the plaintext port: the node's services need the TLS port.
      StatusRuntimeException other =
          assertThrows(
              StatusRuntimeException.class,
              () ->
                  NodeServiceGrpc.newBlockingStub(probe)
                      .withDeadlineAfter(10, TimeUnit.SECONDS)
                      .status(StatusRequest.getDefaultInstance()));
      assertEquals(Status.Code.UNIMPLEMENTED, other.getStatus().getCode(), other.toString());
      // The same statuses as the TLS port: a draining node turns NOT_SERVING on both.
      server.setServing(role, false);
      assertEquals(ServingStatus.NOT_SERVING, check(probe, role));
      server.close();
      StatusRuntimeException closed =
          assertThrows(StatusRuntimeException.class, () -> check(probe, role));
      assertEquals(Status.Code.UNAVAILABLE, closed.getStatus().getCode(), closed.toString());
    } finally {
      probe.shutdownNow();
      plainToMain.shutdownNow();
    }
    NodeConfigException clash =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "grpc.port", "50051", "grpc.health-port", "50051")));
    assertTrue(clash.getMessage().contains("pdserve.grpc.health-port"), clash.getMessage());
  }

  private static ServingStatus check(ManagedChannel ch, String service) {
    return HealthGrpc.newBlockingStub(ch)
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .check(HealthCheckRequest.newBuilder().setService(service).build())
        .getStatus();
  }

  @Test
  void plaintextClientIsRefusedByATlsServer() throws Exception {
    TestPki pki = new TestPki(dir, "cluster");
    GrpcServer server = server(closeLater(TransportSecurity.cluster(pki.node("a"), "a")));
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class, () -> health(server, TransportSecurity.plaintext()));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
  }

  @Test
  void certificateFromAnotherCaIsRefused() throws Exception {
    TestPki cluster = new TestPki(dir, "cluster");
    TestPki other = new TestPki(dir, "other");
    GrpcServer server = server(closeLater(TransportSecurity.cluster(cluster.node("a"), "a")));
    // Trusts the cluster CA (so the server is accepted) but holds a certificate of another CA.
    TlsSettings foreign = other.node("intruder");
    TlsSettings intruder =
        new TlsSettings(
            true,
            foreign.cert(),
            foreign.key(),
            Optional.of(cluster.caFile),
            foreign.reloadInterval());
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> health(server, closeLater(TransportSecurity.cluster(intruder, "x"))));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
    // And a client without any certificate, trusting the CA:
    TransportSecurity anonymous =
        TransportSecurity.client(Optional.of(cluster.caFile), Optional.empty(), Optional.empty());
    assertThrows(StatusRuntimeException.class, () -> health(server, anonymous));
  }

  @Test
  void rotatedCertificateTakesEffectOnNewConnectionsWithoutRestart() throws Exception {
    TestPki pki = new TestPki(dir, "cluster");
    TlsSettings files = pki.node("a");
    TransportSecurity security = closeLater(TransportSecurity.cluster(files, "a"));
    GrpcServer server = server(security);
    CertificateAuthority.Issued client = pki.ca.issue("client", List.of("localhost"));
    BigInteger before = TestPki.serverSerial(server.port(), pki.ca.certificate(), client);
    assertEquals(ServingStatus.SERVING, health(server, closeLater(clusterClient(pki))));

    assertFalse(security.reload(), "unchanged files change nothing");
    CertificateAuthority.Issued rotated = pki.ca.issue("a", List.of("localhost", "127.0.0.1"));
    rotated.write(files.cert().orElseThrow(), files.key().orElseThrow());
    assertTrue(security.reload(), "rewritten files are applied");

    BigInteger after = TestPki.serverSerial(server.port(), pki.ca.certificate(), client);
    assertNotEquals(before, after, "a new connection still sees the old certificate");
    assertEquals(rotated.certificate().getSerialNumber(), after);
    assertEquals(ServingStatus.SERVING, health(server, closeLater(clusterClient(pki))));
  }

  private TransportSecurity clusterClient(TestPki pki) throws Exception {
    return TransportSecurity.cluster(pki.node("client-" + open.size()), "c");
  }

  @Test
  void pemFilesReadTheCertificateChainAndTheKey() throws Exception {
    TestPki pki = new TestPki(dir, "cluster");
    TlsSettings files = pki.node("a");
    List<X509Certificate> chain = PemFiles.certificates(files.cert().orElseThrow());
    PrivateKey key = PemFiles.privateKey(files.key().orElseThrow());
    assertEquals(1, chain.size());
    assertEquals("EC", key.getAlgorithm());
    assertEquals(pki.ca.certificate(), PemFiles.certificates(pki.caFile).get(0));
    Path notPem = Files.writeString(dir.resolve("bad.key"), "no key here\n");
    var e = assertThrows(java.io.IOException.class, () -> PemFiles.privateKey(notPem), "no key");
    assertTrue(e.getMessage().contains("bad.key"), e.getMessage());
  }
}
