package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.metrics.PrometheusText;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code pdserve local} command as users run it: a separate process that starts every node as
 * its own process, writes the router's address to the ready file once every node is ACTIVE, answers
 * {@code generate --router} like {@code generate --local}, and on SIGTERM stops every process it
 * started. Also: health with a service name per role and server reflection on nodes.
 */
class LocalCommandProcessTest {
  @Test
  void localClusterServesAnswersAndStopsEveryProcessOnSigterm(@TempDir Path tmp) throws Exception {
    Path ready = tmp.resolve("ready");
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-")) {
        cmd.add(a);
      }
    }
    cmd.addAll(
        List.of(
            "-cp",
            System.getProperty("java.class.path"),
            "dev.pdserve.launcher.Main",
            "local",
            "--prefill",
            "1",
            "--decode",
            "1",
            "--ready-file",
            ready.toString(),
            "--log-level",
            "WARN",
            "--kv-budget",
            "16m",
            "--node-heap",
            "384m",
            // every request must be served here, however slow the machine: overload refusal is
            // OverloadRefusalTest's subject, and on a loaded 2-core machine its prediction refused
            // a third of this test's bench run
            "--set",
            "pdserve.router.max-queue-delay=0"));
    Process local = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    List<String> output = new ArrayList<>();
    CompletableFuture<Void> drained =
        CompletableFuture.runAsync(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(
                      new InputStreamReader(local.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  synchronized (output) {
                    output.add(line);
                  }
                }
              } catch (Exception e) {
                // process ended
              }
            });
    try {
      InJvmCluster.await(
          Duration.ofSeconds(150),
          () -> Files.exists(ready) || !local.isAlive(),
          "the ready file " + ready);
      assertTrue(local.isAlive(), "pdserve local died: " + output);
      String router = Files.readAllLines(ready).get(0).trim();
      assertTrue(router.matches("127\\.0\\.0\\.1:\\d+"), router);
      String httpLine = Files.readAllLines(ready).get(1).trim();
      assertTrue(httpLine.matches("http=http://127\\.0\\.0\\.1:\\d+"), httpLine);

      // the OpenAI-compatible HTTP API of the same router answers with the same greedy tokens
      HttpClient http = HttpClient.newHttpClient();
      HttpResponse<String> completion =
          http.send(
              HttpRequest.newBuilder(URI.create(httpLine.substring(5) + "/v1/chat/completions"))
                  .POST(
                      HttpRequest.BodyPublishers.ofString(
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"Grüße, 世界\"}], \"max_tokens\": 10, \"temperature\": 0, \"return_token_ids\": true}"))
                  .build(),
              HttpResponse.BodyHandlers.ofString());
      assertEquals(200, completion.statusCode(), completion.body());

      ObjectMapper json = new ObjectMapper();
      JsonNode viaRouter =
          json.readTree(
              run(
                  "generate",
                  "--router",
                  router,
                  "--prompt",
                  "Grüße, 世界",
                  "--max-tokens",
                  "10",
                  "--json"));
      JsonNode viaLocal =
          json.readTree(
              run("generate", "--local", "--prompt", "Grüße, 世界", "--max-tokens", "10", "--json"));
      assertEquals(viaLocal.get("token_ids"), viaRouter.get("token_ids"));
      assertEquals(
          viaLocal.get("token_ids"),
          json.readTree(completion.body()).get("choices").get(0).get("token_ids"),
          completion.body());
      assertEquals(viaLocal.get("text"), viaRouter.get("text"));
      assertEquals("length", viaRouter.get("finish_reason").asText());

      // every child's /metrics, as pdserve local lists them; the router counted the 20 tokens
      // (10 for the HTTP chat completion, 10 for generate --router)
      InJvmCluster.await(
          Duration.ofSeconds(30),
          () -> metricsUrls(output).size() == 3,
          "three 'metrics of' lines in: " + output);
      for (var e : metricsUrls(output).entrySet()) {
        var r =
            HttpClient.newHttpClient()
                .send(
                    HttpRequest.newBuilder(URI.create(e.getValue())).build(),
                    HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), e.toString());
        var metrics = PrometheusText.parse(r.body());
        assertTrue(
            metrics.families().containsKey("vllm:num_requests_running"),
            e + " lacks vllm:num_requests_running");
        if (e.getKey().equals("router")) {
          assertEquals(
              20, metrics.sum("vllm:generation_tokens_total"), "tokens the router streamed");
        }
      }

      // pdserve bench against this pdserve local cluster: 200 requests at a Poisson rate over gRPC,
      // and a shorter run through the router's OpenAI-compatible HTTP API; every request completes
      Path benchGrpc = tmp.resolve("bench-grpc.json");
      run(
          "bench",
          "--router",
          router,
          "--num-prompts",
          "200",
          "--request-rate",
          "50",
          "--burstiness",
          "1",
          "--input-len",
          "32",
          "--output-len",
          "6",
          "--ignore-eos",
          "--seed",
          "5",
          "--json",
          benchGrpc.toString());
      JsonNode grpcRun = json.readTree(benchGrpc.toFile());
      assertEquals(200, grpcRun.get("completed").asInt(), "gRPC bench: " + grpcRun.get("failures"));
      assertEquals(200 * 6, grpcRun.get("total_output_tokens").asInt());
      Path benchHttp = tmp.resolve("bench-http.json");
      run(
          "bench",
          "--base-url",
          httpLine.substring(5),
          "--endpoint",
          "chat",
          "--num-prompts",
          "30",
          "--request-rate",
          "30",
          "--input-len",
          "32",
          "--output-len",
          "6",
          "--ignore-eos",
          "--seed",
          "5",
          "--json",
          benchHttp.toString());
      JsonNode httpRun = json.readTree(benchHttp.toFile());
      assertEquals(30, httpRun.get("completed").asInt(), "HTTP bench: " + httpRun.get("failures"));
      assertEquals(30 * 6, httpRun.get("total_output_tokens").asInt());

      // an error from the router: status name and message, non-zero exit
      StringWriter err = new StringWriter();
      int code =
          Main.run(
              new PrintWriter(new StringWriter()),
              new PrintWriter(err, true),
              "generate",
              "--router",
              router,
              "--prompt",
              "x".repeat(1500));
      assertTrue(code != 0);
      assertTrue(
          err.toString()
              .contains("INVALID_ARGUMENT: This model's maximum context length is 1024 tokens"),
          err.toString());

      // health per role and reflection, on the router
      ManagedChannel ch = NettyChannelBuilder.forTarget(router).usePlaintext().build();
      try {
        HealthCheckResponse h =
            HealthGrpc.newBlockingStub(ch)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService("pdserve.router").build());
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, h.getStatus());
        CompletableFuture<List<String>> services = new CompletableFuture<>();
        var stream =
            ServerReflectionGrpc.newStub(ch)
                .withDeadlineAfter(10, TimeUnit.SECONDS)
                .serverReflectionInfo(
                    new StreamObserver<>() {
                      @Override
                      public void onNext(ServerReflectionResponse r) {
                        services.complete(
                            r.getListServicesResponse().getServiceList().stream()
                                .map(s -> s.getName())
                                .toList());
                      }

                      @Override
                      public void onError(Throwable t) {
                        services.completeExceptionally(t);
                      }

                      @Override
                      public void onCompleted() {}
                    });
        stream.onNext(ServerReflectionRequest.newBuilder().setListServices("*").build());
        assertTrue(
            services.get(10, TimeUnit.SECONDS).contains("pdserve.v1.Generation"),
            services.get().toString());
        stream.onCompleted();
      } finally {
        ch.shutdownNow();
      }

      // SIGTERM: every process it started ends
      List<Long> pids = childPids(output);
      assertEquals(3, pids.size(), "expected router, prefill and decode pids in: " + output);
      local.destroy();
      assertTrue(local.waitFor(60, TimeUnit.SECONDS), "pdserve local did not exit on SIGTERM");
      for (long pid : pids) {
        InJvmCluster.await(
            Duration.ofSeconds(30),
            () -> ProcessHandle.of(pid).map(p -> !p.isAlive()).orElse(true),
            "process " + pid + " to end");
      }
      for (long pid : pids) {
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false));
      }
    } finally {
      local.destroyForcibly();
      drained.get(30, TimeUnit.SECONDS);
    }
  }

  private static String run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    assertEquals(0, code, err.toString());
    return out.toString();
  }

  private static List<Long> childPids(List<String> output) {
    List<Long> pids = new ArrayList<>();
    Pattern p = Pattern.compile("(\\w+)=(\\d+)");
    synchronized (output) {
      for (String line : output) {
        if (line.startsWith("router listening on")) {
          Matcher m = p.matcher(line.substring(line.indexOf("processes {")));
          while (m.find()) {
            pids.add(Long.parseLong(m.group(2)));
          }
        }
      }
    }
    return pids;
  }

  /**
   * Node id to metrics URL, from the lines {@code metrics of ID (ROLE): URL} pdserve local prints.
   */
  static Map<String, String> metricsUrls(List<String> output) {
    Map<String, String> out = new TreeMap<>();
    synchronized (output) {
      for (String line : output) {
        var m =
            Pattern.compile("^metrics of (\\S+) \\(\\w+\\): (http://\\S+/metrics)$").matcher(line);
        if (m.matches()) {
          out.put(m.group(1), m.group(2));
        }
      }
    }
    return out;
  }
}
