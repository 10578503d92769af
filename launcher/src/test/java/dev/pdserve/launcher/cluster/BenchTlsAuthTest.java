package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.core.tls.CertificateAuthority;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.node.ClusterTokens;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pdserve bench} against a router with TLS on its public APIs (and mutual TLS between the
 * nodes) and API keys on: with {@code --tls-ca} and {@code --api-key} every request completes over
 * gRPC and over HTTPS, the cluster report's admin calls included; without the key the run stops at
 * once with the router's UNAUTHENTICATED (gRPC) or 401 (HTTP), saying so.
 */
class BenchTlsAuthTest {
  private static final String KEY = "bench-tls-test-key-7f3a";
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir static Path dir;
  private static InJvmCluster cluster;
  private static CertificateAuthority.LocalFiles pki;

  @BeforeAll
  static void start() throws Exception {
    pki = CertificateAuthority.writeLocalCluster(dir);
    Path keys = dir.resolve("api-keys");
    Files.writeString(keys, KEY + "\n");
    Map<String, String> settings = new HashMap<>(TlsClusterTest.tlsSettings(pki));
    settings.put("auth.api-keys-file", keys.toString());
    settings.put("auth.cluster-token-file", ClusterTokens.generate().toString());
    cluster =
        InJvmCluster.start(
            1,
            1,
            0,
            settings,
            TransportSecurity.client(Optional.of(pki.ca()), Optional.empty(), Optional.empty()));
  }

  @AfterAll
  static void stop() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private record Run(int code, String out, String err) {}

  private static Run bench(List<String> target, boolean withKey, Path json) {
    List<String> args = new ArrayList<>(List.of("bench"));
    args.addAll(target);
    args.addAll(List.of("--tls-ca", pki.ca().toString()));
    if (withKey) {
      args.addAll(List.of("--api-key", KEY));
    }
    args.addAll(
        List.of(
            "--num-prompts",
            "6",
            "--request-rate",
            "inf",
            "--input-len",
            "8",
            "--output-len",
            "4",
            "--ignore-eos",
            "--request-timeout",
            "120"));
    if (json != null) {
      args.addAll(List.of("--json", json.toString()));
    }
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code =
        Main.run(
            new PrintWriter(out, true), new PrintWriter(err, true), args.toArray(String[]::new));
    return new Run(code, out.toString(), err.toString());
  }

  private static List<String> grpc() {
    return List.of("--router", cluster.router.grpcAddress());
  }

  private static List<String> https() {
    return List.of("--base-url", cluster.router.httpUrl(), "--endpoint", "completions");
  }

  @Test
  void grpcBenchOverTlsWithTheKeyCompletesEveryRequestAndReportsTheCluster(@TempDir Path tmp)
      throws Exception {
    Path json = tmp.resolve("grpc.json");
    Run r = bench(grpc(), true, json);
    assertEquals(0, r.code(), r.err() + r.out());
    JsonNode j = JSON.readTree(json.toFile());
    assertEquals(6, j.get("completed").asInt(), "failures: " + j.get("failures"));
    assertEquals(0, j.get("failed").asInt());
    JsonNode before = j.get("cluster").get("before");
    assertFalse(before.has("error"), "the admin API over TLS with the key: " + before);
    assertEquals(3, before.get("nodes").size(), "router, prefill and decode listed: " + before);
  }

  @Test
  void httpBenchOverHttpsWithTheKeyCompletesEveryRequest(@TempDir Path tmp) throws Exception {
    assertTrue(cluster.router.httpUrl().startsWith("https://"), cluster.router.httpUrl());
    Path json = tmp.resolve("http.json");
    Run r = bench(https(), true, json);
    assertEquals(0, r.code(), r.err() + r.out());
    JsonNode j = JSON.readTree(json.toFile());
    assertEquals(6, j.get("completed").asInt(), "failures: " + j.get("failures"));
    assertEquals(0, j.get("failed").asInt());
  }

  @Test
  void withoutTheKeyGrpcBenchStopsWithUnauthenticated() {
    Run r = bench(grpc(), false, null);
    assertEquals(1, r.code(), r.err() + r.out());
    assertTrue(
        r.err().contains("UNAUTHENTICATED") && r.err().contains("Authorization"),
        "the error should name UNAUTHENTICATED and say what to send: " + r.err());
  }

  @Test
  void withoutTheKeyHttpBenchStopsWith401() {
    Run r = bench(https(), false, null);
    assertEquals(1, r.code(), r.err() + r.out());
    assertTrue(
        r.err().contains("HTTP 401") && r.err().contains("invalid_api_key"),
        "the error should name HTTP 401 and the router's invalid_api_key: " + r.err());
  }

  @Test
  void tlsOptionsWithAPlainHttpUrlAreAUsageError() {
    Run r = bench(List.of("--base-url", "http://" + cluster.router.httpAddress()), true, null);
    assertEquals(2, r.code(), r.err() + r.out());
    assertTrue(r.err().contains("https://"), r.err());
  }
}
