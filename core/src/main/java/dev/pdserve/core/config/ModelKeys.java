package dev.pdserve.core.config;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.graph.VisionTowerGraph;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import dev.pdserve.model.vision.VisionEncoder;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Keys choosing the model, its weights' precision, the KV cache and the compute engine. Part of
 * {@link ConfigKeys}, where every key is listed.
 */
public interface ModelKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<Long> KV_BUDGET_BYTES =
      GROUP.define(
          ConfigKey.of(
              "pdserve.kv.budget-bytes",
              new ValueType.ByteSize(),
              1L << 30,
              "paged KV pool of a worker (fixed budget)"));
  ConfigKey<KvDtype> KV_DTYPE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.kv.dtype",
              ValueType.Choice.ofLowerCase(KvDtype.class, KvDtype.MUST_BE),
              KvDtype.FP32,
              "element type of a worker's KV cache (`--kv-dtype`): keys and values are rounded"
                  + " to it when computed, stored and sent in it (fp16/bf16: half the bytes, twice"
                  + " the blocks); every worker, and a reference engine compared with, must agree"));
  ConfigKey<QuantMode> MODEL_QUANTIZATION =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.quantization",
              quantModes(),
              QuantMode.NONE,
              "weight-only quantization of the linear layers (`--quantization`), computed with"
                  + " ONNX Runtime's MatMulNBits: int8 and int4 quantize routed and shared"
                  + " experts, dense MLP, attention projections and LM head; int2-mixed keeps the"
                  + " first MoE layers' experts at 4 bits, the later ones at 2, the dense parts at"
                  + " 8 (FastDeploy's WINT2 recipe); the embedding table is gathered quantized in"
                  + " the LM head's format (see pdserve.model.quantize-embeddings); norms and gates"
                  + " stay fp32; every node, and a reference engine compared with, must agree"));
  ConfigKey<Integer> MODEL_QUANTIZATION_BLOCK_SIZE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.quantization-block-size",
              blockSizes(),
              WeightQuantization.DEFAULT_BLOCK_SIZE,
              "weights per scale (and zero point) along the input dimension"
                  + " (`--quantization-block-size`); smaller is more accurate and larger"));
  ConfigKey<QuantCompute> MODEL_QUANTIZATION_COMPUTE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.quantization-compute",
              ValueType.Choice.ofLowerCase(QuantCompute.class, QuantCompute.MUST_BE),
              QuantCompute.FP32,
              "what MatMulNBits computes low-bit weights' products in"
                  + " (`--quantization-compute`): fp32 (accuracy_level 0) or int8 (accuracy_level"
                  + " 4: int8 activations, ONNX Runtime's integer kernels; ~0.3 % error, faster"
                  + " for 8- and 2-bit on CPU); only with a quantized mode; every node, and a"
                  + " reference engine compared with, must agree"));
  ConfigKey<Boolean> MODEL_QUANTIZE_EMBEDDINGS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.quantize-embeddings",
              KeyTypes.BOOL,
              true,
              "with a quantized pdserve.model.quantization: store the token embedding table"
                  + " block-quantized in the LM head's format (8-bit for int8 and int2-mixed, 4-bit"
                  + " for int4; with tied embeddings the LM head's own codes) and gather rows with"
                  + " ONNX Runtime's GatherBlockQuantized; false keeps an fp32 table (1 GiB for"
                  + " 28B) beside the head; no effect with none; every node, and a reference engine"
                  + " compared with, must agree"));
  ConfigKey<ExpertRange> EXPERT_RANGE =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.expert.range",
              new ValueType.Experts(),
              "all experts",
              "expert shard: the routed-expert indices it hosts (`--experts`); not together with"
                  + " pdserve.expert.shard-count"));
  ConfigKey<String> MODEL_PRESET =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.preset",
              new ValueType.Preset(),
              "tiny",
              "built-in model shape, unless pdserve.model.dir is set (every node must agree)"));
  ConfigKey<Path> MODEL_DIR =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.model.dir",
              new ValueType.Directory(),
              "",
              "directory of an ERNIE checkpoint (`config.json`, safetensors); replaces the"
                  + " preset (every node must agree)"));
  ConfigKey<String> MODEL_SERVED_NAME =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.model.served-name",
              ValueType.Text.matching(
                  Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"),
                  "must be 1..128 characters of letters, digits, '.', '_', ':', '/' or '-'"
                      + " starting with a letter or digit",
                  "1..128 of `A-Z a-z 0-9 . _ : / -`"),
              "the model directory's name, or the preset's",
              "name the model is served under (`--served-model-name`, as vLLM's): `/v1/models`"
                  + " lists it, responses carry it, a request naming another model gets 404"));
  ConfigKey<Long> NODE_MEMORY_LIMIT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.node.memory-limit",
              new ValueType.ByteSize(),
              0L,
              "memory a worker's or expert shard's share of the model (weights at its precision,"
                  + " KV pool, activations) must fit in; 0 = the machine's physical memory. A node"
                  + " that cannot fit refuses to start, saying how much it needs and has"));
  ConfigKey<Integer> ORT_THREADS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.ort.threads",
              new ValueType.Int(0, 1024),
              0,
              "ONNX Runtime intra-op threads; 0 = all cores"));
  ConfigKey<Boolean> ORT_EXECUTION_PROVIDER =
      GROUP.define(
          ConfigKey.of(
              "pdserve.ort.execution-provider",
              new ValueType.Choice<>(
                  executionProviders(),
                  "must be cpu or cuda (cuda needs the GPU build: mvn -Pgpu, or the -gpu image)"),
              false,
              "`cuda` needs the GPU build (`mvn -Pgpu` / the `-gpu` image); a CPU build refuses to"
                  + " start with a message saying so"));
  ConfigKey<Long> MODEL_SEED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.seed",
              new ValueType.LongInt(),
              42L,
              "seed of a preset's dummy weights (every node must agree)"));
  ConfigKey<Boolean> MODEL_LOW_BIT_DUMMY_WEIGHTS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.model.low-bit-dummy-weights",
              KeyTypes.BOOL,
              false,
              "generate a preset's quantized matrices directly in their low-bit format from the"
                  + " seed (seconds at full size) instead of quantizing fp32 dummy weights; needs a"
                  + " quantized pdserve.model.quantization; every node must agree"));
  ConfigKey<ExpertsMode> EXPERTS_MODE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.experts.mode",
              ValueType.Choice.ofLowerCase(ExpertsMode.class, "must be local or remote"),
              ExpertsMode.LOCAL,
              "worker: routed experts in its own process, or `remote` on expert shards"));
  ConfigKey<Integer> PREFILL_CHUNK_TOKENS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.prefill.chunk-tokens",
              new ValueType.Int(1, 1 << 20),
              512,
              "long prompts are prefilled in chunks of at most this many tokens"));
  ConfigKey<Integer> DECODE_MAX_BATCH =
      GROUP.define(
          ConfigKey.of(
              "pdserve.decode.max-batch",
              new ValueType.Int(1, 4096),
              64,
              "sequences per decode step at most"));
  ConfigKey<Boolean> VISION_ENABLED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.vision.enabled",
              KeyTypes.BOOL,
              true,
              "worker of a vision model: load the vision tower and resampler and take images;"
                  + " false = text only (the tower's memory is not needed, image parts are refused"
                  + " with 400 / INVALID_ARGUMENT; on the router it makes"
                  + " pdserve.router.images.max-per-prompt default to 0)"));
  ConfigKey<Long> VISION_ENCODER_CACHE_BYTES =
      GROUP.define(
          ConfigKey.of(
              "pdserve.vision.encoder-cache-bytes",
              new ValueType.ByteSize(),
              EngineSettings.DEFAULT_ENCODER_CACHE_BYTES,
              "worker of a vision model: encoded images kept by digest (LRU) so an image sent"
                  + " again skips the vision encoder; 0 = keep none"));
  ConfigKey<Integer> VISION_ATTENTION_CHUNK =
      GROUP.define(
          ConfigKey.of(
              "pdserve.vision.attention-chunk",
              new ValueType.Int(VisionTowerGraph.MIN_ATTENTION_CHUNK, 1 << 20),
              VisionEncoder.DEFAULT_ATTENTION_CHUNK,
              "worker of a vision model: the vision tower's attention runs in blocks of this"
                  + " many query patches, so one block's fp32 scores are heads x chunk x patches"
                  + " x 4 bytes (386 MiB for the 28B tower at max_pixels by default) instead of"
                  + " heads x patches²; an image of at most chunk + 1 patches goes in one block;"
                  + " on the CPU provider every value gave the same features bit for bit in the"
                  + " tests (ChunkedVisionAttentionTest), other providers may round differently:"
                  + " keep it alike on every worker"));

  private static Map<String, Boolean> executionProviders() {
    Map<String, Boolean> m = new LinkedHashMap<>();
    m.put("cpu", false);
    m.put("cuda", true);
    return m;
  }

  private static ValueType.Choice<QuantMode> quantModes() {
    Map<String, QuantMode> m = new LinkedHashMap<>();
    for (QuantMode q : QuantMode.values()) {
      m.put(q.configName(), q);
    }
    return new ValueType.Choice<>(m, QuantMode.MUST_BE);
  }

  private static ValueType.Choice<Integer> blockSizes() {
    Map<String, Integer> m = new LinkedHashMap<>();
    for (int b = 16; b <= 256; b *= 2) {
      m.put(Integer.toString(b), b);
    }
    return new ValueType.Choice<>(m, WeightQuantization.BLOCK_MUST_BE);
  }
}
