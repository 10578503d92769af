package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NodeConfigLoaderTest {
  @TempDir Path dir;

  private static NodeConfigException invalid(Map<String, String> settings) {
    return assertThrows(NodeConfigException.class, () -> NodeConfigLoader.fromMap(settings));
  }

  private static void assertProblem(NodeConfigException e, String expected) {
    assertTrue(
        e.problems().stream().anyMatch(p -> p.startsWith(expected)),
        () -> "expected a problem starting with '" + expected + "', got " + e.problems());
  }

  @Test
  void defaultsAreServingDefaults() {
    NodeConfig c = NodeConfigLoader.fromMap(Map.of("role", "prefill"));
    assertEquals(NodeRole.PREFILL, c.role());
    assertEquals(NodeConfig.processNodeId(), c.nodeId(), "default node id is the process id");
    assertEquals("127.0.0.1", c.network().bindHost());
    assertEquals("127.0.0.1", c.network().advertisedHost());
    assertEquals(0, c.network().grpcPort());
    assertEquals(0, c.network().flightPort());
    assertEquals(0, c.network().metricsPort());
    assertEquals(0, c.network().httpPort());
    assertEquals(48 << 20, c.network().httpMaxBodyBytes());
    assertEquals(32 << 20, c.network().grpcMaxInboundBytes());
    assertEquals("pdserve", c.cluster().name());
    assertEquals(JoinMode.TCPIP, c.cluster().join());
    assertEquals(5701, c.cluster().port());
    assertEquals(1, c.cluster().heartbeatIntervalSeconds());
    assertEquals(5, c.cluster().maxNoHeartbeatSeconds());
    assertEquals(1, c.cluster().minClusterSize());
    assertEquals(NodeConfigLoader.DEFAULT_SEED_PORTS, c.cluster().members().size());
    assertEquals(new HostPort("127.0.0.1", 5701), c.cluster().members().get(0));
    assertEquals(new HostPort("127.0.0.1", 5710), c.cluster().members().get(9));
    assertEquals(1L << 30, c.engine().kvBudgetBytes());
    assertEquals(Optional.empty(), c.engine().expertRange());
    assertEquals("tiny", c.engine().modelPreset());
    assertEquals(0, c.engine().ortThreads());
  }

  @Test
  void processNodeIdIsStableWithinTheProcess() {
    assertEquals(NodeConfig.processNodeId(), NodeConfig.processNodeId());
    assertTrue(
        NodeConfig.processNodeId().matches("[a-z0-9-]+-[0-9a-f]{6}"), NodeConfig.processNodeId());
  }

  @Test
  void flagsBeatEnvironmentWhichBeatsTheFile() throws Exception {
    Path file = dir.resolve("node.properties");
    Files.writeString(
        file,
        String.join(
            "\n",
            "pdserve.role=DECODE",
            "pdserve.grpc.port=7000",
            "pdserve.flight.port=7001",
            "pdserve.metrics.port=7002",
            "pdserve.cluster.name=from-file",
            "pdserve.expert.range=0-31",
            ""));
    Map<String, String> env =
        Map.of(
            "PDSERVE_GRPC_PORT", "8000",
            "PDSERVE_FLIGHT_PORT", "8001",
            "PDSERVE_HTTP_PORT", "8080",
            "PDSERVE_CLUSTER_MAX_NO_HEARTBEAT_SECONDS", "9",
            "PDSERVE_PORT", "tcp://10.0.0.1:5701", // Kubernetes service variable: not ours, ignored
            "HOME", "/root");
    Map<String, String> flags = Map.of("pdserve.grpc.port", "9000", "kv.budget-bytes", "512MiB");

    NodeConfig c = NodeConfigLoader.load(Optional.of(file), env, flags);

    assertEquals(NodeRole.DECODE, c.role(), "file only");
    assertEquals(9000, c.network().grpcPort(), "flag beats env and file");
    assertEquals(8001, c.network().flightPort(), "env beats file");
    assertEquals(7002, c.network().metricsPort(), "file only");
    assertEquals(8080, c.network().httpPort(), "env only");
    assertEquals("from-file", c.cluster().name());
    assertEquals(9, c.cluster().maxNoHeartbeatSeconds());
    assertEquals(512L << 20, c.engine().kvBudgetBytes(), "flag without the pdserve. prefix");
    assertEquals(Optional.of(new ExpertRange(0, 31)), c.engine().expertRange());
  }

  @Test
  void blankValueFallsBackToTheLayerBelowsDefault() {
    NodeConfig c =
        NodeConfigLoader.load(
            Optional.empty(),
            Map.of("PDSERVE_ROLE", "router", "PDSERVE_CLUSTER_NAME", "env"),
            Map.of("cluster.name", " "));
    assertEquals("pdserve", c.cluster().name());
  }

  @Test
  void environmentVariableNames() {
    assertEquals(
        "PDSERVE_GRPC_PORT", NodeConfigLoader.environmentVariable(NodeConfigLoader.GRPC_PORT));
    assertEquals(
        "PDSERVE_CLUSTER_MAX_NO_HEARTBEAT_SECONDS",
        NodeConfigLoader.environmentVariable(NodeConfigLoader.CLUSTER_MAX_NO_HEARTBEAT_SECONDS));
    assertEquals(
        "PDSERVE_CLUSTER_KUBERNETES_SERVICE",
        NodeConfigLoader.environmentVariable(NodeConfigLoader.CLUSTER_K8S_SERVICE));
  }

  @Test
  void theVisionAttentionChunkDefaultsTo256AndRefusesOneRowBlocks() {
    assertEquals(
        256, NodeConfigLoader.fromMap(Map.of("role", "prefill")).engine().visionAttentionChunk());
    assertEquals(
        64,
        NodeConfigLoader.fromMap(Map.of("role", "prefill", "vision.attention-chunk", "64"))
            .engine()
            .visionAttentionChunk());
    assertProblem(
        invalid(Map.of("role", "prefill", "vision.attention-chunk", "1")),
        "pdserve.vision.attention-chunk: must be 2..");
  }

  @Test
  void outOfRangePortNamesTheKeyAndTheSource() {
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.load(
                    Optional.empty(),
                    Map.of("PDSERVE_GRPC_PORT", "70000"),
                    Map.of("role", "decode")));
    assertEquals(
        List.of(
            "pdserve.grpc.port: must be 0..65535, got 70000 (from environment PDSERVE_GRPC_PORT)"),
        e.problems());
    assertEquals(e.problems().get(0), e.getMessage());
  }

  @Test
  void everyProblemIsReportedAtOnce() {
    NodeConfigException e =
        invalid(
            Map.of(
                "grpc.port", "x", "cluster.heartbeat-interval-seconds", "0", "ort.threads", "-1"));
    assertProblem(e, "pdserve.role: required");
    assertProblem(e, "pdserve.grpc.port: must be an integer 0..65535, got 'x'");
    assertProblem(e, "pdserve.cluster.heartbeat-interval-seconds: must be 1..300, got 0");
    assertProblem(e, "pdserve.ort.threads: must be 0..1024, got -1");
    assertEquals(4, e.problems().size(), e.problems().toString());
  }

  @Test
  void leasePrefixCacheAndLocalPrefillSettingsHaveDefaultsAndNamedErrors() {
    NodeConfig c = NodeConfigLoader.fromMap(Map.of("role", "decode"));
    assertEquals(PrefixSettings.DEFAULTS, c.prefix());
    assertEquals(10, c.prefix().leaseSeconds());
    assertTrue(c.prefix().prefixCache());
    NodeConfig set =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "router",
                "kv.lease-seconds",
                "2",
                "prefill.prefix-cache",
                "false",
                "router.local-prefill-threshold",
                "0",
                "router.prefix-cache-weight",
                "0.5"));
    assertEquals(new PrefixSettings(2, false, 0, 0.5), set.prefix());
    NodeConfigException e =
        invalid(
            Map.of(
                "role",
                "router",
                "kv.lease-seconds",
                "0",
                "prefill.prefix-cache",
                "maybe",
                "router.local-prefill-threshold",
                "-1",
                "router.prefix-cache-weight",
                "-2"));
    assertProblem(e, "pdserve.kv.lease-seconds: must be 1..3600, got 0");
    assertProblem(e, "pdserve.prefill.prefix-cache: must be true or false, got 'maybe'");
    assertProblem(e, "pdserve.router.local-prefill-threshold: must be 0..1048576, got -1");
    assertProblem(e, "pdserve.router.prefix-cache-weight: must be a number >= 0, got '-2'");
  }

  @Test
  void unknownKeyIsAnError() {
    assertProblem(
        invalid(Map.of("role", "router", "grcp.port", "1")),
        "pdserve.grcp.port: unknown key (from flag)");
  }

  @Test
  void badRoleListsTheValidRoles() {
    assertProblem(
        invalid(Map.of("role", "trainer")),
        "pdserve.role: must be one of ROUTER, PREFILL, DECODE, EXPERT, got 'trainer'");
  }

  @Test
  void membersAreListedOneByOne() {
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of("role", "router", "cluster.members", "10.0.0.1:5701, 10.0.0.2:5702,[::1]:5703"));
    assertEquals(
        List.of(
            new HostPort("10.0.0.1", 5701),
            new HostPort("10.0.0.2", 5702),
            new HostPort("::1", 5703)),
        c.cluster().members());
    assertEquals("[::1]:5703", c.cluster().members().get(2).toString());

    assertProblem(
        invalid(Map.of("role", "router", "cluster.members", "127.0.0.1:5701-5703")),
        "pdserve.cluster.members: port ranges are not supported, list members one by one, got '127.0.0.1:5701-5703'");
    assertProblem(
        invalid(Map.of("role", "router", "cluster.members", "127.0.0.1")),
        "pdserve.cluster.members: expected host:port");
  }

  @Test
  void everyBadMemberIsItsOwnProblem() {
    NodeConfigException e =
        invalid(Map.of("role", "router", "cluster.members", "a:1, b, c:2-3, d:4"));
    assertEquals(
        List.of(
            "pdserve.cluster.members: expected host:port, got ' b' (from flag)",
            "pdserve.cluster.members: port ranges are not supported, list members one by one,"
                + " got ' c:2-3' (from flag)"),
        e.problems());
  }

  @Test
  void autoClusterPortHasNoDefaultSeeds() {
    NodeConfig c = NodeConfigLoader.fromMap(Map.of("role", "router", "cluster.port", "0"));
    assertEquals(0, c.cluster().port());
    assertTrue(c.cluster().members().isEmpty());
  }

  @Test
  void heartbeatBoundMustExceedTheInterval() {
    assertProblem(
        invalid(
            Map.of(
                "role",
                "router",
                "cluster.heartbeat-interval-seconds",
                "5",
                "cluster.max-no-heartbeat-seconds",
                "5")),
        "pdserve.cluster.max-no-heartbeat-seconds: must be greater than pdserve.cluster.heartbeat-interval-seconds (5), got 5");
  }

  @Test
  void kubernetesJoinNeedsAServiceAndQualifiesABareName() {
    assertProblem(
        invalid(Map.of("role", "router", "cluster.join", "kubernetes")),
        "pdserve.cluster.kubernetes.service: required");
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "router",
                "cluster.join",
                "KUBERNETES",
                "cluster.kubernetes.service",
                "pdserve-hz",
                "cluster.kubernetes.namespace",
                "llm"));
    assertEquals("pdserve-hz.llm.svc.cluster.local", c.cluster().kubernetesServiceDns());
    assertTrue(c.cluster().members().isEmpty());
    assertProblem(
        invalid(Map.of("role", "router", "cluster.join", "multicast")),
        "pdserve.cluster.join: must be one of TCPIP, KUBERNETES, NONE, got 'multicast'");
  }

  @Test
  void wildcardBindNeedsAnAdvertisedHost() {
    assertProblem(
        invalid(Map.of("role", "decode", "bind.host", "0.0.0.0")),
        "pdserve.advertised.host: required when pdserve.bind.host is a wildcard");
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of("role", "decode", "bind.host", "0.0.0.0", "advertised.host", "10.1.2.3"));
    assertEquals("10.1.2.3", c.network().advertisedHost());
    assertEquals(
        new HostPort("10.1.2.3", 5701),
        c.cluster().members().get(0),
        "default seeds are on the advertised host");
  }

  @Test
  void portsMustNotCollide() {
    assertProblem(
        invalid(Map.of("role", "decode", "grpc.port", "7000", "flight.port", "7000")),
        "pdserve.flight.port: must differ from pdserve.grpc.port");
    assertProblem(
        invalid(Map.of("role", "router", "grpc.port", "7000", "http.port", "7000")),
        "pdserve.http.port: must differ from the gRPC");
  }

  @Test
  void byteSizes() {
    assertEquals(
        4L << 30,
        NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.budget-bytes", "4g"))
            .engine()
            .kvBudgetBytes());
    assertEquals(
        4L << 30,
        NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.budget-bytes", "4GiB"))
            .engine()
            .kvBudgetBytes());
    assertEquals(
        123,
        NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.budget-bytes", "123"))
            .engine()
            .kvBudgetBytes());
    assertProblem(
        invalid(Map.of("role", "decode", "kv.budget-bytes", "4GB")),
        "pdserve.kv.budget-bytes: expected a byte count like");
    assertEquals(
        1 << 20,
        NodeConfigLoader.fromMap(Map.of("role", "router", "http.max-body-bytes", "1m"))
            .network()
            .httpMaxBodyBytes());
    assertProblem(
        invalid(Map.of("role", "router", "http.max-body-bytes", "100")),
        "pdserve.http.max-body-bytes: must be 1KiB..2GiB, got 100");
  }

  @Test
  void expertRangeAndModelValidation() {
    assertProblem(
        invalid(Map.of("role", "expert", "expert.range", "31-0")),
        "pdserve.expert.range: expected 0 <= first <= last, got 31-0");
    assertProblem(
        invalid(Map.of("role", "expert", "model.preset", "gpt")),
        "pdserve.model.preset: unknown preset 'gpt'; known presets: tiny");
    assertProblem(
        invalid(Map.of("role", "expert", "model.dir", dir.resolve("missing").toString())),
        "pdserve.model.dir: no such directory");
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of("role", "expert", "model.dir", dir.toString(), "expert.range", "32-63"));
    assertEquals(Optional.of(dir), c.engine().modelDir());
    assertFalse(c.engine().expertRange().get().contains(31));
  }

  @Test
  void badNodeId() {
    assertProblem(
        invalid(Map.of("role", "expert", "node.id", "has space")),
        "pdserve.node.id: must be 1..128 characters");
  }

  @Test
  void unreadableFileIsReported() {
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.load(
                    Optional.of(dir.resolve("nope.properties")),
                    Map.of(),
                    Map.of("role", "router")));
    assertTrue(
        e.problems()
            .get(0)
            .startsWith("config file " + dir.resolve("nope.properties") + ": cannot read it"),
        e.problems().toString());
  }

  @Test
  void executionProviderIsCpuOrCuda() {
    assertEquals(false, NodeConfigLoader.fromMap(Map.of("role", "decode")).engine().ortCuda());
    assertEquals(
        true,
        NodeConfigLoader.fromMap(Map.of("role", "decode", "ort.execution-provider", "CUDA"))
            .engine()
            .ortCuda());
    NodeConfigException e = invalid(Map.of("role", "decode", "ort.execution-provider", "gpu"));
    assertTrue(
        e.getMessage().contains("pdserve.ort.execution-provider")
            && e.getMessage().contains("cpu or cuda")
            && e.getMessage().contains("'gpu'"),
        e.getMessage());
  }
}
