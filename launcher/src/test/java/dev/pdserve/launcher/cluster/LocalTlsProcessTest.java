package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.pdserve.launcher.Main;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pdserve local --tls --api-keys-file} as users run it, in its own process: the router
 * answers over TLS with the printed CA and a key (generate and bench), refuses a client without the
 * key, and on SIGTERM the throw-away certificate directory is deleted with the processes.
 */
class LocalTlsProcessTest {
  private static final String KEY = "local-tls-process-test-key";
  private static final Pattern TLS_LINE =
      Pattern.compile("TLS on; throw-away CA and node certificate in (\\S+), .*--tls-ca (\\S+)\\)");

  private record Run(int code, String out, String err) {}

  private static Run cli(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Run(code, out.toString(), err.toString());
  }

  @Test
  void tlsAndApiKeysLocalClusterServesKeyHoldersAndDeletesItsCertificatesOnSigterm(
      @TempDir Path tmp) throws Exception {
    Path ready = tmp.resolve("ready");
    Path keys = tmp.resolve("keys.txt");
    Files.writeString(keys, KEY + "\n");
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
            "--tls",
            "--api-keys-file",
            keys.toString(),
            "--ready-file",
            ready.toString(),
            "--log-level",
            "WARN",
            "--kv-budget",
            "16m",
            "--node-heap",
            "384m",
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
          Duration.ofSeconds(180),
          () -> Files.exists(ready) || !local.isAlive(),
          "the ready file " + ready);
      assertTrue(local.isAlive(), "pdserve local died: " + output);
      Path dir = null;
      String ca = null;
      synchronized (output) {
        for (String line : output) {
          Matcher m = TLS_LINE.matcher(line);
          if (m.find()) {
            dir = Path.of(m.group(1));
            ca = m.group(2);
          }
        }
      }
      assertTrue(dir != null, "no TLS line in: " + output);
      assertTrue(Files.isReadable(Path.of(ca)), ca + " not readable while the cluster runs");
      String router = Files.readAllLines(ready).get(0).trim();
      assertTrue(
          Files.readAllLines(ready).get(1).trim().startsWith("http=https://"),
          "the router's HTTP API is not HTTPS: " + Files.readAllLines(ready));

      Run ok =
          cli(
              "generate",
              "--router",
              router,
              "--tls-ca",
              ca,
              "--api-key",
              KEY,
              "--prompt",
              "Hello",
              "--max-tokens",
              "4",
              "--json");
      assertEquals(0, ok.code(), ok.err());
      JsonNode g = new ObjectMapper().readTree(ok.out());
      assertEquals(4, g.get("token_ids").size(), ok.out());

      Path json = tmp.resolve("bench.json");
      Run bench =
          cli(
              "bench",
              "--router",
              router,
              "--tls-ca",
              ca,
              "--api-key",
              KEY,
              "--num-prompts",
              "8",
              "--request-rate",
              "inf",
              "--input-len",
              "8",
              "--output-len",
              "4",
              "--ignore-eos",
              "--json",
              json.toString());
      assertEquals(0, bench.code(), bench.err());
      assertEquals(8, new ObjectMapper().readTree(json.toFile()).get("completed").asInt());

      Run noKey =
          cli("generate", "--router", router, "--tls-ca", ca, "--prompt", "Hello", "--json");
      assertEquals(1, noKey.code(), noKey.out() + noKey.err());
      assertTrue(noKey.err().contains("UNAUTHENTICATED"), noKey.err());

      local.destroy(); // SIGTERM: the shutdown hook stops the nodes, then deletes the directory
      assertTrue(local.waitFor(60, TimeUnit.SECONDS), "pdserve local did not exit on SIGTERM");
      assertFalse(
          Files.exists(dir), dir + " (the CA and node key) still exists after pdserve local ended");
    } finally {
      local.destroyForcibly();
      drained.get(30, TimeUnit.SECONDS);
    }
  }
}
