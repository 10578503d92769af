package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.memory.ProcessMemory;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.Sampler;
import dev.pdserve.model.weights.ModelWeights;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Throughput of the single-process engine (every expert in-process): prefill tokens/s and decode
 * tokens/s for batches of sequences. The baseline the cluster is held against.
 */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    description =
        "Measure the single-process engine: prefill and decode tokens/s at several batch sizes.")
final class ModelBenchCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin ModelOptions model;

  @Option(
      names = "--batches",
      split = ",",
      defaultValue = "1,8,32",
      description = "Batch sizes. Default: ${DEFAULT-VALUE}.")
  List<Integer> batches;

  @Option(
      names = "--prompt-len",
      defaultValue = "128",
      description = "Prompt tokens per sequence. Default: ${DEFAULT-VALUE}.")
  int promptLen;

  @Option(
      names = "--decode-steps",
      defaultValue = "32",
      description = "Decode steps measured per batch. Default: ${DEFAULT-VALUE}.")
  int decodeSteps;

  @Option(
      names = "--repeats",
      defaultValue = "3",
      description = "Measured repetitions (median reported). Default: ${DEFAULT-VALUE}.")
  int repeats;

  @Option(
      names = "--threads",
      defaultValue = "0",
      description = "ONNX Runtime intra-op threads (0 = all cores).")
  int threads;

  @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON.")
  Path json;

  @Override
  public Integer call() throws IOException {
    if (promptLen < 1 || decodeSteps < 1 || repeats < 1) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--prompt-len, --decode-steps and --repeats must be >= 1");
    }
    PrintWriter out = spec.commandLine().getOut();
    OrtRuntime rt = OrtRuntime.shared(new OrtRuntime.RuntimeOptions(threads, false, true));
    ObjectNode report = GenerateCommand.JSON.createObjectNode();
    try (LoadedModel m = LoadedModel.load(model.spec());
        ModelWeights w = new ModelWeights(m.config(), m.weights(), rt, model.numerics().weights());
        ModelRunner runner = new ModelRunner(m.config(), w, rt, model.numerics());
        ExpertCompute experts =
            new ExpertCompute(m.config(), w, rt, ExpertCompute.HostedExperts.ALL)) {
      ModelConfig cfg = m.config();
      if (promptLen + decodeSteps + 1 > cfg.maxPositions()) {
        throw new CommandLine.ParameterException(
            spec.commandLine(),
            "--prompt-len + --decode-steps exceeds the context of " + cfg.maxPositions());
      }
      LocalExperts local = new LocalExperts(experts);
      report.put("model", cfg.name());
      report.put("kv_dtype", model.kvDtype.configName());
      report.put("quantization", model.numerics().weights().mode().configName());
      report.put("quantization_block_size", model.numerics().weights().blockSize());
      report.put("prompt_len", promptLen);
      report.put("decode_steps", decodeSteps);
      report.put("cores", Runtime.getRuntime().availableProcessors());
      ArrayNode rows = report.putArray("results");
      out.printf(
          "pdserve model bench: %s, %s KV, weights %s, prompt %d tokens, %d decode steps, median"
              + " of %d, %d cores%n",
          cfg.name(),
          model.kvDtype.configName(),
          model.numerics().weights().describe(),
          promptLen,
          decodeSteps,
          repeats,
          Runtime.getRuntime().availableProcessors());
      out.printf(
          "%6s %18s %18s %16s%n", "batch", "prefill tok/s", "decode tok/s", "decode step ms");
      long load0 = System.nanoTime();
      int sessions = experts.loadAll();
      runOnce(runner, local, cfg, 1, Math.min(promptLen, 16), 2); // warm-up: loads the rest
      double loadS = (System.nanoTime() - load0) / 1e9;
      long rssLoaded = ProcessMemory.residentBytes().orElse(-1);
      out.printf(
          "loaded: %d expert sessions and the dense weights in %.1f s, resident %s%n",
          sessions, loadS, mib(rssLoaded));
      report.put("load_seconds", Math.round(loadS * 10) / 10.0);
      report.put("resident_bytes_loaded", rssLoaded);
      for (int b : batches) {
        double[] prefill = new double[repeats];
        double[] decode = new double[repeats];
        for (int r = 0; r < repeats; r++) {
          double[] t = runOnce(runner, local, cfg, b, promptLen, decodeSteps);
          prefill[r] = t[0];
          decode[r] = t[1];
        }
        double p = median(prefill);
        double d = median(decode);
        out.printf("%6d %18.0f %18.1f %16.2f%n", b, p, d, 1000.0 * b / d);
        out.flush();
        ObjectNode row = rows.addObject();
        row.put("batch", b);
        row.put("prefill_tokens_per_s", Math.round(p));
        row.put("decode_tokens_per_s", Math.round(d * 10) / 10.0);
        row.put("decode_step_ms", Math.round(100000.0 * b / d) / 100.0);
      }
    }
    long peak = ProcessMemory.peakResidentBytes().orElse(-1);
    out.printf("peak resident %s%n", mib(peak));
    report.put("peak_resident_bytes", peak);
    if (json != null) {
      Files.writeString(json, report.toPrettyString());
    }
    out.flush();
    return 0;
  }

  /**
   * Prefills {@code b} sequences in one step, then decodes {@code steps} steps: {prefill tok/s,
   * decode tok/s}.
   */
  private static double[] runOnce(
      ModelRunner runner, LocalExperts experts, ModelConfig cfg, int b, int len, int steps) {
    Random rnd = new Random(b * 31L + len);
    List<ContiguousKv> kvs = new ArrayList<>();
    List<SequenceStep> prefill = new ArrayList<>();
    for (int i = 0; i < b; i++) {
      int[] tokens = new int[len];
      for (int t = 0; t < len; t++) {
        tokens[t] = 32 + rnd.nextInt(Math.min(256, cfg.vocabSize() - 32));
      }
      ContiguousKv kv = new ContiguousKv(cfg, len + steps + 1);
      kvs.add(kv);
      prefill.add(SequenceStep.text(tokens, kv, true));
    }
    long t0 = System.nanoTime();
    float[][] logits = runner.forward(prefill, experts);
    long t1 = System.nanoTime();
    for (int s = 0; s < steps; s++) {
      List<SequenceStep> step = new ArrayList<>(b);
      for (int i = 0; i < b; i++) {
        step.add(SequenceStep.text(new int[] {Sampler.argmax(logits[i])}, kvs.get(i), true));
      }
      logits = runner.forward(step, experts);
    }
    long t2 = System.nanoTime();
    return new double[] {
      b * (double) len / ((t1 - t0) / 1e9), b * (double) steps / ((t2 - t1) / 1e9)
    };
  }

  private static String mib(long bytes) {
    return bytes < 0 ? "unknown" : String.format("%.0f MiB", bytes / (1024.0 * 1024));
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s[s.length / 2];
  }
}
