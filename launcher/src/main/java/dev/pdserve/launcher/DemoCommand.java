package dev.pdserve.launcher;

import dev.pdserve.launcher.node.LocalCluster;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The main job: a local disaggregated cluster (router, prefill, decode and expert shards, each its
 * own process) with the built-in model, answering a few prompts with timings — and checking each
 * answer against the single-process reference engine.
 */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description =
        "Start a local cluster with the built-in model, answer a few prompts through it with timings, stop it.")
final class DemoCommand implements Callable<Integer> {
  static final List<String> PROMPTS =
      List.of(
          "What is disaggregated prefill/decode serving?",
          "Écris une phrase en français, s'il te plaît.",
          "用一句话介绍混合专家模型。",
          "List three colours.");

  @Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--prefill",
      defaultValue = "1",
      description = "Prefill workers. Default: ${DEFAULT-VALUE}.")
  int prefill;

  @Option(
      names = "--decode",
      defaultValue = "1",
      description = "Decode workers. Default: ${DEFAULT-VALUE}.")
  int decode;

  @Option(
      names = "--experts",
      defaultValue = "2",
      description = "Expert shards (0 = experts inside each worker). Default: ${DEFAULT-VALUE}.")
  int experts;

  @Option(
      names = "--max-tokens",
      defaultValue = "32",
      description = "Tokens per reply. Default: ${DEFAULT-VALUE}.")
  int maxTokens;

  @Option(
      names = "--single-process",
      description = "Use the single-process reference engine only (no cluster).")
  boolean singleProcess;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    try (LoadedModel m = LoadedModel.load(ModelSpec.preset("tiny"));
        ReferenceEngine reference = new ReferenceEngine(m, OrtRuntime.shared())) {
      if (singleProcess) {
        out.println(
            "pdserve demo: the single-process reference engine, built-in model 'tiny' (dummy seeded weights)");
        for (int i = 0; i < PROMPTS.size(); i++) {
          out.printf("%n> %s%n", PROMPTS.get(i));
          GenerateResult r = reference.generate(request(i), e -> print(out, e.text()));
          out.printf("%n  [%s]%n", timings(r));
        }
        out.flush();
        return 0;
      }
      out.printf(
          "pdserve demo: starting a local cluster — router, %d prefill, %d decode, %s — each its own process, built-in model 'tiny'...%n",
          prefill,
          decode,
          experts == 0 ? "experts inside the workers" : experts + " expert shards");
      out.flush();
      long t0 = System.nanoTime();
      LocalCluster.Spec s =
          new LocalCluster.Spec(
              prefill,
              decode,
              experts,
              "tiny",
              null,
              ModelSpec.DEFAULT_SEED,
              "128m",
              "WARN",
              Map.of(),
              "512m");
      try (LocalCluster cluster =
              LocalCluster.start(
                  s,
                  line -> {
                    if (line.contains(" ERROR ")) {
                      err.println(line);
                    }
                  },
                  Duration.ofSeconds(240));
          RouterClient client = new RouterClient(cluster.routerAddress())) {
        out.printf(
            "cluster up in %.1f s; router at %s%n",
            (System.nanoTime() - t0) / 1e9, cluster.routerAddress());
        out.println(
            "(dummy seeded weights: the replies are deterministic noise; the timings and the token check are real)");
        int same = 0;
        for (int i = 0; i < PROMPTS.size(); i++) {
          out.printf("%n> %s%n", PROMPTS.get(i));
          out.flush();
          GenerateResult r = client.generate(request(i), 120, text -> print(out, text));
          boolean match = Arrays.equals(r.tokenIds(), reference.generate(request(i)).tokenIds());
          same += match ? 1 : 0;
          out.printf(
              "%n  [%s; tokens %s the single-process engine's]%n",
              timings(r), match ? "identical to" : "DIFFERENT from");
        }
        out.printf(
            "%n%d of %d replies identical to the single-process reference engine. Stopping the cluster.%n",
            same, PROMPTS.size());
        out.flush();
        return same == PROMPTS.size() ? 0 : 1;
      }
    }
  }

  private GenerateRequest request(int i) {
    return new GenerateRequest(
        "demo-" + i, Prompt.user(PROMPTS.get(i)), SamplingParams.greedy(maxTokens), true);
  }

  private static void print(PrintWriter out, String text) {
    out.print(text.replace("\uFFFD", "·"));
    out.flush();
  }

  private static String timings(GenerateResult r) {
    double decodeMs = r.totalMillis() - r.prefillMillis();
    return String.format(
        "%d prompt tokens, %d generated, %s, time to first token %.1f ms, %.1f tokens/s after it",
        r.promptTokens(),
        r.completionTokens(),
        r.finishReason().wireName(),
        r.prefillMillis(),
        r.completionTokens() > 1 ? (r.completionTokens() - 1) / (decodeMs / 1000) : 0.0);
  }
}
