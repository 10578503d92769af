package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.launcher.Main;
import dev.pdserve.launcher.node.NodeJvm;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Reader;
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
 * The README's main command, {@code pdserve demo}, as a user runs it: its own JVM ({@code
 * dev.pdserve.launcher.Main demo} with the module flags bin/pdserve passes and this build's class
 * path, as bin/pdserve runs the jar), which starts a router, a prefill worker, a decode worker and
 * two expert shards as processes of their own, streams each prompt's reply through the router,
 * checks it against the single-process reference engine and stops the cluster.
 */
class DemoCommandProcessTest {
  /** The demo's prompts: 4 (README: "a few prompts"). */
  private static final int PROMPTS = 4;

  /** The demo's default topology: router, 1 prefill, 1 decode, 2 expert shards. */
  private static final int CHILD_PROCESSES = 5;

  /** The demo's default reply length ({@code --max-tokens}). */
  private static final int MAX_TOKENS = 32;

  /** One answered prompt: {@code > prompt}, the streamed reply, then the timings and verdict. */
  private static final Pattern ANSWER =
      Pattern.compile(
          "^> ([^\\n]*)\\n(.*?)\\n  \\[([^\\n]*); tokens (identical to|DIFFERENT from) the"
              + " single-process engine's\\]$",
          Pattern.MULTILINE | Pattern.DOTALL | Pattern.UNIX_LINES);

  @Test
  void demoAnswersEveryPromptAsTheReferenceEngineDoesExitsZeroAndLeavesNoProcess(@TempDir Path tmp)
      throws Exception {
    List<String> cmd = NodeJvm.javaWithThisJvmsModuleFlags();
    // The test reads the replies (French, Chinese) back: UTF-8 whatever this machine's locale.
    cmd.add("-Dfile.encoding=UTF-8");
    cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "demo"));
    Path errFile = tmp.resolve("demo.err");
    Process demo = new ProcessBuilder(cmd).redirectError(errFile.toFile()).start();
    // Read as characters, not lines: the replies of the dummy-weight model hold carriage returns.
    StringBuilder stdout = new StringBuilder();
    CompletableFuture<List<ProcessHandle>> clusterUp = new CompletableFuture<>();
    Thread reader =
        new Thread(
            () -> {
              char[] buf = new char[8192];
              try (Reader r =
                  new InputStreamReader(demo.getInputStream(), StandardCharsets.UTF_8)) {
                for (int n; (n = r.read(buf)) >= 0; ) {
                  synchronized (stdout) {
                    stdout.append(buf, 0, n);
                    if (!clusterUp.isDone() && stdout.indexOf("\ncluster up in ") >= 0) {
                      // every node the demo started is up: its children, while they run
                      clusterUp.complete(demo.children().toList());
                    }
                  }
                }
              } catch (IOException e) {
                // the demo ended
              }
              clusterUp.complete(List.of());
            },
            "demo-stdout");
    reader.start();
    try {
      assertTrue(
          demo.waitFor(240, TimeUnit.SECONDS), "pdserve demo did not finish: " + output(stdout));
      reader.join(TimeUnit.SECONDS.toMillis(30));
      List<ProcessHandle> children = clusterUp.getNow(List.of());
      String out = output(stdout);
      String diagnostics = out + "\n--- stderr:\n" + Files.readString(errFile);
      assertEquals(0, demo.exitValue(), "exit code of pdserve demo:\n" + diagnostics);
      assertEquals(
          CHILD_PROCESSES,
          children.size(),
          "processes the demo ran while its cluster was up: "
              + children.stream().map(DemoCommandProcessTest::describe).toList()
              + "\n"
              + diagnostics);
      for (ProcessHandle child : children) {
        InJvmCluster.await(
            Duration.ofSeconds(30),
            () -> !child.isAlive(),
            "the demo's child " + describe(child) + " to end after the demo exited");
      }

      List<String[]> answers = new ArrayList<>();
      Matcher m = ANSWER.matcher(out);
      while (m.find()) {
        answers.add(new String[] {m.group(1), m.group(2), m.group(4)});
      }
      assertEquals(PROMPTS, answers.size(), "answered prompts in:\n" + diagnostics);
      try (LoadedModel model = LoadedModel.load(ModelSpec.preset("tiny"));
          ReferenceEngine reference = new ReferenceEngine(model, OrtRuntime.shared())) {
        for (int i = 0; i < answers.size(); i++) {
          String prompt = answers.get(i)[0];
          assertEquals(
              "identical to", answers.get(i)[2], "the demo's own check of '" + prompt + "'");
          String want =
              reference
                  .generate(
                      new GenerateRequest(
                          "demo-" + i,
                          Prompt.user(prompt),
                          SamplingParams.greedy(MAX_TOKENS),
                          true))
                  .text()
                  .replace("\uFFFD", "·"); // as the demo prints it
          assertEquals(want, answers.get(i)[1], "the reply printed for '" + prompt + "'");
        }
      }
      assertTrue(
          out.contains(
              PROMPTS
                  + " of "
                  + PROMPTS
                  + " replies identical to the single-process reference engine. Stopping the"
                  + " cluster."),
          "the demo's summary line in:\n" + out);

    } finally {
      demo.destroyForcibly();
      clusterUp.getNow(List.of()).forEach(ProcessHandle::destroyForcibly);
      reader.join(TimeUnit.SECONDS.toMillis(30));
    }
  }

  private static String output(StringBuilder stdout) {
    synchronized (stdout) {
      return stdout.toString();
    }
  }

  private static String describe(ProcessHandle p) {
    String args = String.join(" ", p.info().arguments().orElse(new String[0]));
    int main = args.indexOf("dev.pdserve.launcher.Main");
    return p.pid() + (main >= 0 ? " (" + args.substring(main) + ")" : "");
  }
}
