package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.engine.ContiguousKv;
import dev.pdserve.model.engine.ExpertCompute;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.LocalExperts;
import dev.pdserve.model.engine.ModelRunner;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.SequenceStep;
import dev.pdserve.model.memory.MemoryPlan;
import dev.pdserve.model.memory.ProcessMemory;
import dev.pdserve.model.memory.WeightPrecision;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
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
 * tokens/s for batches of sequences, the load time and the resident memory each weight mode adds;
 * with {@code --compare}, several modes side by side in one run. The baseline the cluster is held
 * against.
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

  @Option(
      names = "--compare",
      split = ",",
      paramLabel = "MODE[:BLOCK[:COMPUTE]]",
      description =
          "Measure several weight modes side by side in one run (repeats interleaved, so the"
              + " machine's load weighs on each alike), e.g."
              + " none,int8,int4,int4:32,int4:64:int8,int2-mixed (COMPUTE: fp32 or int8, as"
              + " --quantization-compute); replaces --quantization. Ratios are against the first.")
  List<String> compare;

  @Option(
      names = "--bandwidth-floor",
      description =
          "Also measure memory bandwidth (a copy benchmark in this run) and report each mode's"
              + " batch-1 decode step against its floor: weight bytes one token reads (dense"
              + " parts, the LM head, one embedding row, top-k text experts per MoE layer) ÷"
              + " bandwidth.")
  boolean bandwidthFloor;

  /** One weight mode under test, loaded. */
  private record Variant(
      String label,
      Numerics numerics,
      ModelWeights weights,
      ModelRunner runner,
      ExpertCompute experts,
      double loadSeconds,
      long residentAdded) {}

  @Override
  public Integer call() throws IOException {
    if (promptLen < 1 || decodeSteps < 1 || repeats < 1) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--prompt-len, --decode-steps and --repeats must be >= 1");
    }
    List<Numerics> modes = modes();
    PrintWriter out = spec.commandLine().getOut();
    OrtRuntime rt = OrtRuntime.shared(new OrtRuntime.RuntimeOptions(threads, false, true));
    ObjectNode report = GenerateCommand.JSON.createObjectNode();
    List<Variant> variants = new ArrayList<>();
    try (LoadedModel m = LoadedModel.load(model.spec())) {
      ModelConfig cfg = m.config();
      if (promptLen + decodeSteps + 1 > cfg.maxPositions()) {
        throw new CommandLine.ParameterException(
            spec.commandLine(),
            "--prompt-len + --decode-steps exceeds the context of " + cfg.maxPositions());
      }
      report.put("model", cfg.name());
      report.put("kv_dtype", model.kvDtype.configName());
      report.put("prompt_len", promptLen);
      report.put("decode_steps", decodeSteps);
      report.put("repeats", repeats);
      report.put("cores", Runtime.getRuntime().availableProcessors());
      out.printf(
          "pdserve model bench: %s, %s KV, prompt %d tokens, %d decode steps, median of %d,"
              + " %d cores%n",
          cfg.name(),
          model.kvDtype.configName(),
          promptLen,
          decodeSteps,
          repeats,
          Runtime.getRuntime().availableProcessors());
      for (Numerics n : modes) {
        variants.add(load(m, n, rt, out));
      }
      ArrayNode modesJson = report.putArray("modes");
      for (Variant v : variants) {
        ObjectNode o = modesJson.addObject();
        o.put("weights", v.label());
        o.put("quantization", v.numerics().weights().mode().configName());
        o.put("quantization_block_size", v.numerics().weights().blockSize());
        o.put("quantization_compute", v.numerics().weights().compute().configName());
        o.put("load_seconds", Math.round(v.loadSeconds() * 10) / 10.0);
        o.put("resident_bytes_added", v.residentAdded());
      }
      out.printf(
          "%-30s %6s %14s %14s %14s %10s %10s%n",
          "weights",
          "batch",
          "prefill tok/s",
          "decode tok/s",
          "decode step ms",
          "prefill x",
          "decode x");
      ArrayNode rows = report.putArray("results");
      for (int b : batches) {
        double[][] prefill = new double[variants.size()][repeats];
        double[][] decode = new double[variants.size()][repeats];
        for (int r = 0; r < repeats; r++) {
          for (int i = 0; i < variants.size(); i++) {
            int vi = (i + r) % variants.size(); // rotate who goes first
            Variant v = variants.get(vi);
            double[] t =
                runOnce(v.runner(), new LocalExperts(v.experts()), cfg, b, promptLen, decodeSteps);
            prefill[vi][r] = t[0];
            decode[vi][r] = t[1];
          }
        }
        double p0 = median(prefill[0]);
        double d0 = median(decode[0]);
        for (int i = 0; i < variants.size(); i++) {
          double p = median(prefill[i]);
          double d = median(decode[i]);
          out.printf(
              "%-30s %6d %14.0f %14.1f %14.2f %10.2f %10.2f%n",
              variants.get(i).label(), b, p, d, 1000.0 * b / d, p / p0, d / d0);
          ObjectNode row = rows.addObject();
          row.put("weights", variants.get(i).label());
          row.put("batch", b);
          row.put("prefill_tokens_per_s", Math.round(p));
          row.put("decode_tokens_per_s", Math.round(d * 10) / 10.0);
          row.put("decode_step_ms", Math.round(100000.0 * b / d) / 100.0);
          row.put("prefill_ratio", Math.round(100 * p / p0) / 100.0);
          row.put("decode_ratio", Math.round(100 * d / d0) / 100.0);
        }
        out.flush();
      }
    } finally {
      for (Variant v : variants) {
        v.experts().close();
        v.runner().close();
        v.weights().close();
      }
    }
    long peak = ProcessMemory.peakResidentBytes().orElse(-1);
    out.printf("peak resident %s%n", mib(peak));
    if (bandwidthFloor) {
      floor(report, out);
    }
    report.put("peak_resident_bytes", peak);
    if (json != null) {
      Files.writeString(json, report.toPrettyString());
    }
    out.flush();
    return 0;
  }

  /**
   * The bandwidth-floor section: copy bandwidth now, and per mode the bytes a batch-1 decode token
   * reads, their floor time and the measured step's ratio to it.
   */
  private void floor(ObjectNode report, PrintWriter out) {
    double gbps = copyBandwidth();
    ObjectNode f = report.putObject("bandwidth_floor");
    f.put("copy_gb_per_s", Math.round(gbps * 100) / 100.0);
    out.printf("copy bandwidth %.2f GB/s (read + write of a 1 GiB buffer, best of 5)%n", gbps);
    ModelConfig cfg;
    try (LoadedModel m = LoadedModel.load(model.spec())) {
      cfg = m.config();
    }
    ArrayNode rows = f.putArray("modes");
    for (Numerics n : modes()) {
      long bytes = bytesPerToken(cfg, n.weights());
      double floorMs = bytes / (gbps * 1e9) * 1e3;
      double stepMs = Double.NaN;
      for (var r : report.get("results")) {
        if (r.get("batch").asInt() == 1
            && r.get("weights").asText().equals(n.weights().describe())) {
          stepMs = r.get("decode_step_ms").asDouble();
        }
      }
      out.printf(
          "%-20s reads %s per token: floor %.2f ms, batch-1 decode step %.2f ms = %.2fx the floor%n",
          n.weights().describe(), mib(bytes), floorMs, stepMs, stepMs / floorMs);
      ObjectNode o = rows.addObject();
      o.put("weights", n.weights().describe());
      o.put("bytes_per_token", bytes);
      o.put("floor_ms", Math.round(floorMs * 1000) / 1000.0);
      o.put("decode_step_ms", stepMs);
      o.put("ratio", Math.round(100 * stepMs / floorMs) / 100.0);
    }
  }

  /**
   * Weight bytes one text token's decode step reads: attention, dense and shared MLPs, gates and
   * norms, the LM head, one embedding row, and top-k text experts in every MoE layer (what a token
   * reads at least; KV reads are left out, small at short contexts).
   */
  static long bytesPerToken(ModelConfig cfg, WeightQuantization q) {
    MemoryPlan plan =
        MemoryPlan.of(
            cfg,
            WeightPrecision.of(cfg, q),
            dev.pdserve.model.config.KvDtype.FP32,
            MemoryPlan.Settings.DEFAULTS);
    long bytes =
        plan.bytes(MemoryPlan.Component.ATTENTION)
            + plan.bytes(MemoryPlan.Component.DENSE_MLP)
            + plan.bytes(MemoryPlan.Component.SHARED_EXPERTS)
            + plan.bytes(MemoryPlan.Component.GATES_AND_NORMS)
            // the head as stored (a tied, quantized table is counted under embeddings)
            + q.bytes(cfg, -1, WeightComponent.LM_HEAD, cfg.hidden(), cfg.vocabSize())
            // one row of the table as stored
            + plan.bytes(MemoryPlan.Component.EMBEDDINGS) / cfg.vocabSize();
    long h = cfg.hidden();
    long inter = cfg.expertGroups().get(0).intermediate();
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cfg.layerKind(l) == dev.pdserve.model.config.LayerKind.MOE) {
        long one =
            2 * q.bytes(cfg, l, WeightComponent.ROUTED_EXPERTS, h, inter)
                + q.bytes(cfg, l, WeightComponent.ROUTED_EXPERTS, inter, h);
        bytes += cfg.topK() * one;
      }
    }
    return bytes;
  }

  /** GB/s of a buffer-to-buffer copy of 1 GiB (bytes read + bytes written), best of 5. */
  private static double copyBandwidth() {
    int size = 1 << 30;
    java.nio.ByteBuffer a = java.nio.ByteBuffer.allocateDirect(size);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect(size);
    for (int i = 0; i < size; i += 4096) {
      a.put(i, (byte) i);
      b.put(i, (byte) 0);
    }
    double best = 0;
    for (int r = 0; r < 5; r++) {
      b.clear();
      long t0 = System.nanoTime();
      b.put(a.duplicate().clear());
      long t1 = System.nanoTime();
      best = Math.max(best, 2.0 * size / ((t1 - t0) / 1e9) / 1e9);
    }
    return best;
  }

  /** The weight modes to measure: {@code --compare}, or the one {@code --quantization} names. */
  private List<Numerics> modes() {
    if (compare == null || compare.isEmpty()) {
      return List.of(model.numerics());
    }
    List<Numerics> modes = new ArrayList<>();
    // --quantization-block-size and --quantization-compute are the entries' defaults.
    QuantizationOptions q = model.quantization;
    int defaultBlock = q.blockSize == null ? WeightQuantization.DEFAULT_BLOCK_SIZE : q.blockSize;
    QuantCompute defaultCompute = q.compute == null ? QuantCompute.FP32 : q.compute;
    for (String c : compare) {
      String[] parts = c.trim().split(":", -1);
      try {
        if (parts.length > 3) {
          throw new IllegalArgumentException("expected MODE[:BLOCK[:COMPUTE]]");
        }
        QuantMode mode = QuantMode.parse(parts[0]);
        int block =
            parts.length >= 2 && !parts[1].isBlank()
                ? Integer.parseInt(parts[1].trim())
                : defaultBlock;
        QuantCompute compute =
            parts.length == 3
                ? QuantCompute.parse(parts[2])
                : (mode == QuantMode.NONE ? QuantCompute.FP32 : defaultCompute);
        modes.add(
            new Numerics(
                model.kvDtype,
                new WeightQuantization(mode, block, compute, q.embeddingsQuantized())));
      } catch (IllegalArgumentException e) {
        throw new CommandLine.ParameterException(
            spec.commandLine(), "--compare '" + c + "': " + e.getMessage());
      }
    }
    return modes;
  }

  /** Loads one mode: its weights, runner and every expert, and warms it up. */
  private Variant load(LoadedModel m, Numerics n, OrtRuntime rt, PrintWriter out) {
    ModelConfig cfg = m.config();
    System.gc();
    long rss0 = ProcessMemory.residentBytes().orElse(-1);
    long t0 = System.nanoTime();
    ModelWeights w = new ModelWeights(cfg, m.weights(), rt, n.weights());
    ModelRunner runner = null;
    ExpertCompute experts = null;
    try {
      runner = new ModelRunner(cfg, w, rt, n);
      experts = new ExpertCompute(cfg, w, rt, ExpertCompute.HostedExperts.ALL);
      int sessions = experts.loadAll();
      runOnce(runner, new LocalExperts(experts), cfg, 1, Math.min(promptLen, 16), 2); // the rest
      double loadS = (System.nanoTime() - t0) / 1e9;
      System.gc();
      long rss1 = ProcessMemory.residentBytes().orElse(-1);
      long added = rss0 < 0 || rss1 < 0 ? -1 : rss1 - rss0;
      String label = n.weights().describe();
      out.printf(
          "loaded %s: %d expert sessions and the dense weights in %.1f s, resident +%s%n",
          label, sessions, loadS, mib(added));
      out.flush();
      return new Variant(label, n, w, runner, experts, loadS, added);
    } catch (RuntimeException e) {
      if (experts != null) {
        experts.close();
      }
      if (runner != null) {
        runner.close();
      }
      w.close();
      throw e;
    }
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
