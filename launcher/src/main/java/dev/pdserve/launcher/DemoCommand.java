package dev.pdserve.launcher;

import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.SamplingParams;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description = "Answer a few prompts with the built-in model and show timings.")
final class DemoCommand implements Callable<Integer> {
  static final List<String> PROMPTS =
      List.of(
          "What is disaggregated prefill/decode serving?",
          "Écris une phrase en français, s'il te plaît.",
          "用一句话介绍混合专家模型。",
          "List three colours.");

  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin ModelOptions model;

  @Option(names = "--max-tokens", defaultValue = "48", description = "Tokens per reply. Default: ${DEFAULT-VALUE}.")
  int maxTokens;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    long t0 = System.nanoTime();
    try (LoadedModel m = LoadedModel.load(model.spec()); ReferenceEngine engine = new ReferenceEngine(m, OrtRuntime.shared())) {
      out.printf("pdserve demo: single-process reference engine, %s (%s), loaded in %.0f ms%n",
          m.config().name(), m.spec().describe(), (System.nanoTime() - t0) / 1e6);
      out.println("(dummy seeded weights: the replies are deterministic noise, the timings are real)");
      int i = 0;
      for (String p : PROMPTS) {
        out.printf("%n> %s%n", p);
        out.flush();
        GenerateRequest req = new GenerateRequest("demo-" + (i++), Prompt.user(p), SamplingParams.greedy(maxTokens), true);
        GenerateResult r = engine.generate(req, e -> {
          out.print(e.text().replace("\uFFFD", "·"));
          out.flush();
        });
        double decodeMs = r.totalMillis() - r.prefillMillis();
        out.printf("%n  [%d prompt tokens, %d generated, finish=%s, time to first token %.1f ms, decode %.1f tokens/s]%n",
            r.promptTokens(), r.completionTokens(), r.finishReason().wireName(), r.prefillMillis(),
            r.completionTokens() > 1 ? (r.completionTokens() - 1) / (decodeMs / 1000) : 0.0);
      }
    }
    out.flush();
    return 0;
  }
}
