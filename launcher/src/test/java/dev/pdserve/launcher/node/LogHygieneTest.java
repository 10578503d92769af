package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.auth.GrpcAuth;
import dev.pdserve.launcher.cluster.InJvmCluster;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;
import org.junit.jupiter.api.Test;

/**
 * Issue 15: no API key, cluster token, prompt text or generated text in a log line at INFO or
 * above. A cluster with auth on runs a disaggregated request (its KV pushed over Flight) through
 * gRPC and HTTP, with right and wrong keys, while a Log4j2 appender on the root logger captures
 * every event of this JVM — message, exception text and log context — and the test searches them
 * all.
 */
class LogHygieneTest {
  private static final String KEY = "hygiene-key-Q7vX2mPz";
  private static final String WRONG = "hygiene-wrong-Zk4TbLw9";
  private static final String PROMPT = "zebra quartz marmalade sextant";

  /** Every event at INFO or above, as text. */
  static final class Capture extends AbstractAppender {
    final ConcurrentLinkedQueue<String> lines = new ConcurrentLinkedQueue<>();

    Capture() {
      super("log-hygiene", null, null, true, Property.EMPTY_ARRAY);
    }

    @Override
    public void append(LogEvent e) {
      if (!e.getLevel().isMoreSpecificThan(Level.INFO)) {
        return;
      }
      StringBuilder b = new StringBuilder();
      b.append(e.getLevel()).append(' ').append(e.getLoggerName()).append(" - ");
      b.append(e.getMessage().getFormattedMessage());
      b.append(' ').append(e.getContextData());
      if (e.getThrown() != null) {
        StringWriter w = new StringWriter();
        e.getThrown().printStackTrace(new PrintWriter(w));
        b.append('\n').append(w);
      }
      lines.add(b.toString());
    }
  }

  @Test
  void noKeyTokenOrPromptTextInTheLogs() throws Exception {
    Capture capture = new Capture();
    capture.start();
    LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
    ctx.getConfiguration().addAppender(capture);
    ctx.getConfiguration().getRootLogger().addAppender(capture, Level.INFO, null);
    ctx.updateLoggers();
    Path keys = Files.createTempFile("pdserve-hygiene-keys", "");
    keys.toFile().deleteOnExit();
    Files.writeString(keys, KEY + "\n");
    Path tokenFile = ClusterTokens.generate();
    String token = Files.readString(tokenFile).strip();
    List<String> secrets = new ArrayList<>(List.of(KEY, WRONG, token, PROMPT));
    try (InJvmCluster c =
        InJvmCluster.start(
            1,
            1,
            0,
            Map.of(
                "auth.api-keys-file", keys.toString(),
                "auth.cluster-token-file", tokenFile.toString(),
                "router.local-prefill-threshold", "0"))) {
      ManagedChannel ok =
          NettyChannelBuilder.forTarget(c.router.grpcAddress())
              .usePlaintext()
              .intercept(GrpcAuth.bearer(KEY))
              .build();
      ManagedChannel bad =
          NettyChannelBuilder.forTarget(c.router.grpcAddress())
              .usePlaintext()
              .intercept(GrpcAuth.bearer(WRONG))
              .build();
      try {
        GenerateRequest req =
            GenerateRequest.newBuilder()
                .setPrompt(PROMPT + " " + PROMPT + " " + PROMPT)
                .setParams(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(6))
                .build();
        StringBuilder generated = new StringBuilder();
        var it =
            GenerationGrpc.newBlockingStub(ok)
                .withDeadlineAfter(120, TimeUnit.SECONDS)
                .generate(req);
        while (it.hasNext()) {
          var r = it.next();
          if (r.hasDelta()) {
            generated.append(r.getDelta().getText());
          }
        }
        assertThrows(
            StatusRuntimeException.class,
            () -> GenerationGrpc.newBlockingStub(bad).generate(req).hasNext());
        HttpClient http = HttpClient.newHttpClient();
        String body =
            "{\"messages\": [{\"role\": \"user\", \"content\": \""
                + PROMPT
                + "\"}], \"max_tokens\": 4}";
        for (String k : List.of(KEY, WRONG)) {
          HttpResponse<String> r =
              http.send(
                  HttpRequest.newBuilder(URI.create(c.router.httpUrl() + "/v1/chat/completions"))
                      .header("Authorization", "Bearer " + k)
                      .header("Content-Type", "application/json")
                      .POST(HttpRequest.BodyPublishers.ofString(body))
                      .build(),
                  HttpResponse.BodyHandlers.ofString());
          assertEquals(k.equals(KEY) ? 200 : 401, r.statusCode(), r.body());
        }
        // The KV of the gRPC request went over Flight: the prefill node pushed it.
        assertTrue(
            c.prefill.get(0).runtime().metrics().registry().scrape().stream()
                .anyMatch(
                    m ->
                        m.getMetadata().getPrometheusName().startsWith("pdserve_kv_transfer_sent")
                            && m.getDataPoints().size() > 0),
            "the prefill node pushed KV");
        String text = generated.toString().strip();
        if (text.length() >= 8) {
          secrets.add(text);
        }
      } finally {
        ok.shutdownNow();
        bad.shutdownNow();
      }
    } finally {
      ctx.getConfiguration().getRootLogger().removeAppender(capture.getName());
      ctx.updateLoggers();
      capture.stop();
    }
    assertFalse(capture.lines.isEmpty(), "the run logged at INFO");
    assertTrue(
        capture.lines.stream().anyMatch(l -> l.contains("secret(s) read")),
        "the key files were read (and counted, not shown)");
    for (String line : capture.lines) {
      for (String s : secrets) {
        assertFalse(line.contains(s), "a log line holds a secret or prompt text: " + line);
      }
      for (String word : PROMPT.split(" ")) {
        assertFalse(line.contains(word), "a log line holds prompt text '" + word + "': " + line);
      }
    }
  }
}
