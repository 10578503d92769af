package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.QuantizationEval;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantizedSizes;
import dev.pdserve.model.quant.WeightQuantization;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pdserve model eval}: a quantized model against the fp32 model with the same weights (KL
 * divergence of next-token distributions, top-1 agreement, identical greedy prefix), as JSON.
 */
@Command(
    name = "eval",
    mixinStandardHelpOptions = true,
    description =
        "Compare the model in --quantization MODE with the fp32 model of the same weights: mean"
            + " and p99 KL divergence of next-token distributions, top-1 agreement and the"
            + " identical greedy prefix, over seeded prompts. Prints JSON.")
final class ModelEvalCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin ModelOptions model;

  @Option(
      names = "--prompts",
      defaultValue = "32",
      description = "Seeded prompts. Default: ${DEFAULT-VALUE}.")
  int prompts;

  @Option(
      names = "--prompt-len",
      defaultValue = "32",
      description = "Tokens per prompt. Default: ${DEFAULT-VALUE}.")
  int promptLen;

  @Option(
      names = "--tokens",
      defaultValue = "32",
      description =
          "Positions compared per prompt (the fp32 greedy continuation). Default: ${DEFAULT-VALUE}.")
  int tokens;

  @Option(
      names = "--prompt-seed",
      defaultValue = "7",
      description = "Seed of the prompts. Default: ${DEFAULT-VALUE}.")
  long promptSeed;

  @Option(
      names = "--ort-threads",
      defaultValue = "0",
      description = "ONNX Runtime intra-op threads (0 = all cores).")
  int threads;

  @Option(names = "--json", paramLabel = "FILE", description = "Also write the JSON to FILE.")
  Path json;

  @Override
  public Integer call() throws IOException {
    QuantizationEval.Options o;
    try {
      o = new QuantizationEval.Options(prompts, promptLen, tokens, promptSeed);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
    }
    if (model.lowBitDummyWeights) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          "--low-bit-dummy-weights: model eval compares against the fp32 model of the same"
              + " weights, and low-bit dummy weights have none");
    }
    WeightQuantization q = model.numerics().weights();
    OrtRuntime rt = OrtRuntime.shared(new OrtRuntime.RuntimeOptions(threads, false, true));
    QuantizationEval.Report r;
    String name;
    double seconds;
    ModelConfig cfg;
    try (LoadedModel m = LoadedModel.load(model.spec())) {
      cfg = m.config();
      name = cfg.name();
      long t0 = System.nanoTime();
      r = QuantizationEval.run(m, rt, q, o);
      seconds = (System.nanoTime() - t0) / 1e9;
    }
    ObjectNode out = GenerateCommand.JSON.createObjectNode();
    out.put("model", name);
    out.put("weights", model.spec().describe());
    out.put("quantization", q.mode().configName());
    out.put("block_size", q.blockSize());
    out.put("quantization_compute", q.compute().configName());
    out.put("quantize_embeddings", q.isQuantized() && q.quantizeEmbeddings());
    out.put("prompts", o.prompts());
    out.put("prompt_len", o.promptLen());
    out.put("tokens", o.tokens());
    out.put("positions", r.positions());
    out.put("mean_kl", r.meanKl());
    out.put("p99_kl", r.p99Kl());
    out.put("max_kl", r.maxKl());
    out.put("top1_agreement", r.top1Agreement());
    out.put("mean_identical_prefix", r.meanIdenticalPrefix());
    out.put("fully_identical", r.fullyIdentical());
    ObjectNode bytes = out.putObject("weight_bytes");
    QuantizedSizes.byComponent(cfg, q)
        .forEach((c, b) -> bytes.put(c.name().toLowerCase(java.util.Locale.ROOT), b));
    out.put("weight_bytes_total", QuantizedSizes.total(cfg, q));
    out.put("weight_bytes_fp32", QuantizedSizes.total(cfg, WeightQuantization.NONE));
    out.put("seconds", Math.round(seconds * 10) / 10.0);
    String text = GenerateCommand.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(out);
    PrintWriter pw = spec.commandLine().getOut();
    pw.println(text);
    pw.flush();
    if (json != null) {
      Files.writeString(json, text + System.lineSeparator());
    }
    return 0;
  }
}
