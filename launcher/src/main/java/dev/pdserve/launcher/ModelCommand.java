package dev.pdserve.launcher;

import dev.pdserve.core.config.ValueType;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.graph.EmbedGraph;
import dev.pdserve.model.graph.ExpertGraph;
import dev.pdserve.model.graph.HeadGraph;
import dev.pdserve.model.graph.LayerGraph;
import dev.pdserve.model.memory.MemoryPlan;
import dev.pdserve.model.memory.WeightPrecision;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.weights.CheckpointConverter;
import dev.pdserve.model.weights.ConvertOptions;
import dev.pdserve.model.weights.ConvertReport;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Spec;

@Command(
    name = "model",
    mixinStandardHelpOptions = true,
    description = "Inspect and prepare models.",
    subcommands = {
      ModelCommand.Info.class,
      ModelCommand.Convert.class,
      ModelBenchCommand.class,
      ModelEvalCommand.class
    })
final class ModelCommand implements Runnable {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  @Command(
      name = "info",
      mixinStandardHelpOptions = true,
      description = "Print a model's size, KV cost, layers and graphs.")
  static final class Info implements Callable<Integer> {
    @Mixin ModelOptions model;
    @Spec picocli.CommandLine.Model.CommandSpec spec;

    @picocli.CommandLine.Option(
        names = "--kv-budget",
        paramLabel = "BYTES",
        defaultValue = "1g",
        description = "KV pool of a worker to size for (e.g. 512m, 8g). Default: ${DEFAULT-VALUE}.")
    String kvBudget;

    @picocli.CommandLine.Option(
        names = "--expert-shards",
        paramLabel = "N",
        defaultValue = "4",
        description = "Expert shards the routed experts are split over. Default: ${DEFAULT-VALUE}.")
    int expertShards;

    @Override
    public Integer call() {
      ModelConfig cfg = model.config();
      MemoryPlan plan = memoryPlan(cfg);
      PrintWriter out = spec.commandLine().getOut();
      out.printf("model             %s%n", cfg.name());
      out.printf(
          "parameters        %s total, %s active per token (language model)%n",
          human(cfg.totalParams()), human(cfg.activeParams()));
      cfg.vision()
          .ifPresent(
              v ->
                  out.printf(
                      "vision encoder    %s parameters (ViT %d blocks, width %d, patch %d, %dx%d merge)%n",
                      human(v.parameters(cfg.hidden())),
                      v.depth(),
                      v.width(),
                      v.patchSize(),
                      v.spatialMerge(),
                      v.spatialMerge()));
      out.printf(
          "hidden            %d, %d layers, %d query / %d KV heads of %d, context %d, vocab %d%n",
          cfg.hidden(),
          cfg.numLayers(),
          cfg.numHeads(),
          cfg.numKvHeads(),
          cfg.headDim(),
          cfg.maxPositions(),
          cfg.vocabSize());
      out.printf(
          "KV per token      %s fp32, %s bf16%n",
          bytes(cfg.kvBytesPerToken(4)), bytes(cfg.kvBytesPerToken(2)));
      KvDtype kv = model.kvDtype;
      out.printf(
          "KV cache          %s (--kv-dtype): %s per token, %d tokens per GiB of pool%n",
          kv.configName(),
          bytes(cfg.kvBytesPerToken(kv.elementBytes())),
          (1L << 30) / cfg.kvBytesPerToken(kv.elementBytes()));
      if (!cfg.expertGroups().isEmpty()) {
        StringBuilder groups = new StringBuilder();
        for (ExpertGroup g : cfg.expertGroups()) {
          groups.append(
              String.format(
                  "%s %d×%d (layers %d-%d)  ",
                  g.name(), g.numExperts(), g.intermediate(), g.firstLayer(), g.lastLayer()));
        }
        out.printf(
            "routed experts    %stop-%d, %d shared (intermediate %d)%n",
            groups, cfg.topK(), cfg.numSharedExperts(), cfg.sharedIntermediate());
      }
      out.printf("layer kinds       %s%n", layerKinds(cfg));
      MemoryReport.print(out, plan, expertShards);
      out.println("graphs (ONNX, built in Java):");
      Map<String, GraphBuilder> graphs = new LinkedHashMap<>();
      graphs.put("embed", EmbedGraph.build(cfg, model.numerics().weights()));
      int firstMoe = cfg.layerKinds().indexOf(LayerKind.MOE);
      int firstDense = cfg.layerKinds().indexOf(LayerKind.DENSE);
      if (firstDense >= 0) {
        graphs.put(
            "layer (dense)  ×" + count(cfg, LayerKind.DENSE),
            LayerGraph.build(cfg, firstDense, model.kvDtype, model.numerics().weights()));
      }
      if (firstMoe >= 0) {
        graphs.put(
            "layer (MoE)    ×" + count(cfg, LayerKind.MOE),
            LayerGraph.build(cfg, firstMoe, model.kvDtype, model.numerics().weights()));
      }
      for (ExpertGroup g : cfg.expertGroups()) {
        graphs.putIfAbsent(
            "expert " + cfg.hidden() + "x" + g.intermediate(),
            ExpertGraph.build(cfg.hidden(), g.intermediate()));
      }
      graphs.put("head", HeadGraph.build(cfg, model.numerics().weights()));
      for (Map.Entry<String, GraphBuilder> e : graphs.entrySet()) {
        var proto = e.getValue().build().getGraph();
        out.printf(
            "  %-22s %4d nodes, inputs %s, outputs %s%n",
            e.getKey(),
            proto.getNodeCount(),
            proto.getInputList().stream().map(v -> v.getName()).toList(),
            proto.getOutputList().stream().map(v -> v.getName()).toList());
      }
      out.flush();
      return 0;
    }

    private MemoryPlan memoryPlan(ModelConfig cfg) {
      WeightPrecision precision = WeightPrecision.of(cfg, model.numerics().weights());
      long budget;
      try {
        budget = new ValueType.ByteSize().parse(kvBudget);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("--kv-budget: " + e.getMessage(), e);
      }
      if (expertShards < 1) {
        throw new IllegalArgumentException("--expert-shards must be >= 1, got " + expertShards);
      }
      return MemoryPlan.of(
          cfg, precision, model.kvDtype, MemoryPlan.Settings.DEFAULTS.withKvBudgetBytes(budget));
    }

    private static long count(ModelConfig cfg, LayerKind kind) {
      return cfg.layerKinds().stream().filter(k -> k == kind).count();
    }

    private static String layerKinds(ModelConfig cfg) {
      StringBuilder sb = new StringBuilder();
      LayerKind run = null;
      int start = 0;
      for (int l = 0; l <= cfg.numLayers(); l++) {
        LayerKind k = l < cfg.numLayers() ? cfg.layerKind(l) : null;
        if (k != run) {
          if (run != null) {
            sb.append(run == LayerKind.DENSE ? "dense" : "moe")
                .append(' ')
                .append(start == l - 1 ? "" + start : start + "-" + (l - 1))
                .append("; ");
          }
          run = k;
          start = l;
        }
      }
      return sb.substring(0, sb.length() - 2);
    }
  }

  @Command(
      name = "convert",
      mixinStandardHelpOptions = true,
      description =
          "Convert an ERNIE safetensors checkpoint (PT release naming, bf16/fp16/fp32, sharded or not) into the fp32 layout the engine loads, or with --quantize into a pre-quantized one it maps without quantizing.")
  static final class Convert implements Callable<Integer> {
    @picocli.CommandLine.Option(
        names = "--checkpoint",
        required = true,
        paramLabel = "DIR",
        description = "Checkpoint directory (config.json + *.safetensors).")
    Path checkpoint;

    @picocli.CommandLine.Option(
        names = "--out",
        required = true,
        paramLabel = "DIR",
        description = "Output directory (must be empty unless --overwrite).")
    Path out;

    @picocli.CommandLine.Option(
        names = "--overwrite",
        description = "Replace weights already in --out.")
    boolean overwrite;

    @picocli.CommandLine.Option(
        names = "--max-shard-bytes",
        paramLabel = "N",
        description = "Split the output into shards of at most N bytes (default 4 GiB).")
    Long maxShardBytes;

    @picocli.CommandLine.Option(
        names = "--quantize",
        paramLabel = "MODE",
        converter = QuantizationOptions.ModeConverter.class,
        description =
            "Store the matrices MODE quantizes (int8, int4 or int2-mixed, as --quantization)"
                + " pre-quantized: MatMulNBits codes, fp32 scales and zero points, the bytes"
                + " quantize-on-load makes; --model DIR then serves them as stored. Default: none"
                + " (all fp32).")
    QuantMode quantize;

    @picocli.CommandLine.Option(
        names = "--block-size",
        paramLabel = "N",
        converter = QuantizationOptions.BlockConverter.class,
        description =
            "Weights per scale along K with --quantize: 16, 32, 64, 128 or 256. Default: 64.")
    Integer blockSize;

    @Spec picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
      if (blockSize != null && (quantize == null || quantize == QuantMode.NONE)) {
        throw new IllegalArgumentException(
            "--block-size needs --quantize int8, int4 or int2-mixed");
      }
      ConvertOptions opts = ConvertOptions.defaults();
      if (quantize != null) {
        opts =
            opts.withQuantization(
                new WeightQuantization(
                    quantize,
                    blockSize == null ? WeightQuantization.DEFAULT_BLOCK_SIZE : blockSize));
      }
      if (overwrite) {
        opts = opts.withOverwrite(true);
      }
      if (maxShardBytes != null) {
        opts = opts.withMaxShardBytes(maxShardBytes);
      }
      long t0 = System.nanoTime();
      ConvertReport r = CheckpointConverter.convert(checkpoint, out, opts);
      PrintWriter o = spec.commandLine().getOut();
      o.printf(
          "converted %s -> %s: %d tensors%s, %s in %d file(s), %d ignored, %.1f s%n",
          checkpoint,
          r.outDir(),
          r.tensorsWritten(),
          r.quantization()
              .map(q -> " (" + r.quantizedMatrices() + " matrices stored " + q.describe() + ")")
              .orElse(""),
          bytes(r.bytesWritten()),
          r.files().size(),
          r.skipped().size(),
          (System.nanoTime() - t0) / 1e9);
      o.flush();
      return 0;
    }
  }

  static String human(long n) {
    if (n >= 1_000_000_000L) {
      return String.format("%.2fB", n / 1e9);
    }
    if (n >= 1_000_000L) {
      return String.format("%.2fM", n / 1e6);
    }
    if (n >= 1_000L) {
      return String.format("%.1fK", n / 1e3);
    }
    return Long.toString(n);
  }

  static String bytes(long b) {
    if (b >= 1 << 20) {
      return String.format("%.1f MiB", b / 1048576.0);
    }
    if (b >= 1 << 10) {
      return String.format("%.1f KiB", b / 1024.0);
    }
    return b + " B";
  }
}
