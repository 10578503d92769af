package dev.pdserve.model.memory;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.vision.VisionEncoder;
import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * What a model needs in memory, per component and per role, for a {@link WeightPrecision} and a KV
 * dtype: the arithmetic behind {@code pdserve model info} and the check a node makes before it
 * loads its weights.
 *
 * <p>Weights are counted once each, as stored (packed low-bit weights plus their block scales;
 * gates, norms and correction biases always fp32). A role's peak adds its KV pool (the configured
 * budget), an estimate of its largest activations (fp32) and a fixed allowance for the runtime (JVM
 * heap, ONNX Runtime arenas, gRPC and Arrow buffers). What the estimate leaves out: ONNX Runtime's
 * pre-packed copies of MatMul weights, the page cache of a memory-mapped checkpoint, and
 * fragmentation — resident memory measured on a run is the figure to trust.
 */
public final class MemoryPlan {
  /** The parts of a model's weights. */
  public enum Component {
    ROUTED_EXPERTS("routed experts"),
    SHARED_EXPERTS("shared experts"),
    DENSE_MLP("dense MLP"),
    ATTENTION("attention (q/k/v/o)"),
    GATES_AND_NORMS("gates, norms, biases"),
    EMBEDDINGS("embeddings"),
    LM_HEAD("LM head"),
    VISION("vision tower + resampler");

    private final String label;

    Component(String label) {
      this.label = label;
    }

    public String label() {
      return label;
    }
  }

  /**
   * How a node is set up beside its model.
   *
   * @param kvBudgetBytes a worker's KV pool ({@code pdserve.kv.budget-bytes})
   * @param prefillChunkTokens longest prefill chunk ({@code pdserve.prefill.chunk-tokens})
   * @param decodeMaxBatch most sequences in a decode step ({@code pdserve.decode.max-batch})
   * @param runtimeBytes allowance for the JVM, ONNX Runtime and buffers, beside weights and KV
   * @param visionAttentionChunk query patches per block of the vision tower's attention ({@code
   *     pdserve.vision.attention-chunk})
   */
  public record Settings(
      long kvBudgetBytes,
      int prefillChunkTokens,
      int decodeMaxBatch,
      long runtimeBytes,
      int visionAttentionChunk) {
    /** The allowance for the runtime unless told otherwise: 512 MiB. */
    public static final long DEFAULT_RUNTIME_BYTES = 512L << 20;

    /**
     * A node's defaults: a 1 GiB KV pool, 512-token chunks, batches of 64, vision attention in
     * blocks of {@link VisionEncoder#DEFAULT_ATTENTION_CHUNK} patches.
     */
    public static final Settings DEFAULTS =
        new Settings(
            1L << 30, 512, 64, DEFAULT_RUNTIME_BYTES, VisionEncoder.DEFAULT_ATTENTION_CHUNK);

    public Settings {
      if (kvBudgetBytes < 0
          || prefillChunkTokens < 1
          || decodeMaxBatch < 1
          || runtimeBytes < 0
          || visionAttentionChunk < 1) {
        throw new IllegalArgumentException(
            "memory plan settings need a KV budget and runtime allowance >= 0 and chunk, batch"
                + " and vision attention chunk >= 1, got kv "
                + kvBudgetBytes
                + ", chunk "
                + prefillChunkTokens
                + ", batch "
                + decodeMaxBatch
                + ", runtime "
                + runtimeBytes
                + ", vision attention chunk "
                + visionAttentionChunk);
      }
    }

    public Settings withKvBudgetBytes(long bytes) {
      return new Settings(
          bytes, prefillChunkTokens, decodeMaxBatch, runtimeBytes, visionAttentionChunk);
    }

    public Settings withVisionAttentionChunk(int patches) {
      return new Settings(kvBudgetBytes, prefillChunkTokens, decodeMaxBatch, runtimeBytes, patches);
    }
  }

  /**
   * What one role of one process needs at its peak.
   *
   * @param role what the process is ("prefill worker", "expert shard (16 of 64 experts)", ...)
   * @param weightBytes the weights it holds
   * @param kvBytes its KV pool
   * @param workspaceBytes its largest activations, estimated
   * @param runtimeBytes the runtime allowance
   */
  public record RoleNeed(
      String role, long weightBytes, long kvBytes, long workspaceBytes, long runtimeBytes) {
    public long totalBytes() {
      return weightBytes + kvBytes + workspaceBytes + runtimeBytes;
    }
  }

  private final ModelConfig cfg;
  private final WeightPrecision precision;
  private final KvDtype kvDtype;
  private final Settings settings;
  private final Map<Component, Long> bytes = new EnumMap<>(Component.class);

  private MemoryPlan(
      ModelConfig cfg, WeightPrecision precision, KvDtype kvDtype, Settings settings) {
    this.cfg = Objects.requireNonNull(cfg, "cfg");
    this.precision = Objects.requireNonNull(precision, "precision");
    this.kvDtype = Objects.requireNonNull(kvDtype, "kvDtype");
    this.settings = Objects.requireNonNull(settings, "settings");
    for (Component c : Component.values()) {
      bytes.put(c, 0L);
    }
    count();
  }

  public static MemoryPlan of(
      ModelConfig cfg, WeightPrecision precision, KvDtype kvDtype, Settings settings) {
    return new MemoryPlan(cfg, precision, kvDtype, settings);
  }

  private void add(Component c, long b) {
    bytes.merge(c, b, Long::sum);
  }

  private void count() {
    WeightPrecision p = precision;
    long h = cfg.hidden();
    long qDim = (long) cfg.numHeads() * cfg.headDim();
    long kvDim = (long) cfg.numKvHeads() * cfg.headDim();
    int moeIndex = 0;
    for (int l = 0; l < cfg.numLayers(); l++) {
      add(
          Component.ATTENTION,
          p.matrixBytes(qDim, h, p.attentionBits())
              + 2 * p.matrixBytes(kvDim, h, p.attentionBits())
              + p.matrixBytes(h, qDim, p.attentionBits()));
      add(Component.GATES_AND_NORMS, 2 * h * 4);
      if (cfg.layerKind(l) == LayerKind.DENSE) {
        add(Component.DENSE_MLP, swiGlu(h, cfg.denseIntermediate(), p.denseMlpBits()));
        continue;
      }
      for (int g : cfg.groupsInLayer(l)) {
        ExpertGroup eg = cfg.expertGroups().get(g);
        add(Component.GATES_AND_NORMS, ((long) eg.numExperts() * h + eg.numExperts()) * 4);
        add(
            Component.ROUTED_EXPERTS,
            eg.numExperts() * swiGlu(h, eg.intermediate(), p.routedExpertBits(moeIndex)));
      }
      if (cfg.sharedIntermediate() > 0) {
        add(Component.SHARED_EXPERTS, swiGlu(h, cfg.sharedIntermediate(), p.sharedExpertBits()));
      }
      moeIndex++;
    }
    add(Component.GATES_AND_NORMS, h * 4); // final norm
    long table = p.matrixBytes(cfg.vocabSize(), h, p.embeddingBits());
    add(Component.EMBEDDINGS, table);
    if (!cfg.tieEmbeddings() || p.lmHeadBits() != p.embeddingBits()) {
      add(Component.LM_HEAD, p.matrixBytes(cfg.vocabSize(), h, p.lmHeadBits()));
    }
    cfg.vision()
        .ifPresent(v -> add(Component.VISION, v.parameters(cfg.hidden()) * p.visionBits() / 8));
  }

  /** Gate, up and down projections of a SwiGLU MLP of {@code inter} on {@code hidden}. */
  private long swiGlu(long hidden, long inter, int bits) {
    return 2 * precision.matrixBytes(inter, hidden, bits)
        + precision.matrixBytes(hidden, inter, bits);
  }

  public ModelConfig config() {
    return cfg;
  }

  public WeightPrecision precision() {
    return precision;
  }

  public KvDtype kvDtype() {
    return kvDtype;
  }

  public Settings settings() {
    return settings;
  }

  /** Bytes of one component's weights. */
  public long bytes(Component c) {
    return bytes.get(c);
  }

  /** Bytes of every weight of the model. */
  public long weightBytes() {
    return bytes.values().stream().mapToLong(Long::longValue).sum();
  }

  /** Bytes of every weight except the routed experts: what a worker with remote experts holds. */
  public long denseBytes() {
    return weightBytes() - bytes(Component.ROUTED_EXPERTS);
  }

  /** KV bytes one token takes in the pool and on the wire. */
  public long kvBytesPerToken() {
    return cfg.kvBytesPerToken(kvDtype.elementBytes());
  }

  /** Tokens the configured KV pool holds. */
  public long kvPoolTokens() {
    return settings.kvBudgetBytes() / kvBytesPerToken();
  }

  /** The largest expert group's expert count (an expert range indexes every group alike). */
  public int expertsPerGroup() {
    return cfg.expertGroups().stream().mapToInt(ExpertGroup::numExperts).max().orElse(0);
  }

  /**
   * Bytes of the routed experts a shard hosting expert indices {@code [0, hosted)} of every group
   * holds (every expert of a group has the same size).
   */
  public long routedExpertBytes(int hosted) {
    long total = 0;
    int moeIndex = 0;
    for (int l = 0; l < cfg.numLayers(); l++) {
      if (cfg.layerKind(l) != LayerKind.MOE) {
        continue;
      }
      for (int g : cfg.groupsInLayer(l)) {
        ExpertGroup eg = cfg.expertGroups().get(g);
        long n = Math.min(hosted, eg.numExperts());
        total += n * swiGlu(cfg.hidden(), eg.intermediate(), precision.routedExpertBits(moeIndex));
      }
      moeIndex++;
    }
    return total;
  }

  // ---- roles ----

  /** A worker in the prefill role with its experts on shards. */
  public RoleNeed prefillWorker() {
    return new RoleNeed(
        "prefill worker (experts remote)",
        denseBytes(),
        settings.kvBudgetBytes(),
        prefillWorkspace(),
        settings.runtimeBytes());
  }

  /** A worker in the decode role with its experts on shards. */
  public RoleNeed decodeWorker() {
    return new RoleNeed(
        "decode worker (experts remote)",
        denseBytes(),
        settings.kvBudgetBytes(),
        decodeWorkspace(),
        settings.runtimeBytes());
  }

  /** A worker hosting every routed expert itself ({@code pdserve.experts.mode=local}). */
  public RoleNeed workerWithLocalExperts() {
    return new RoleNeed(
        "worker, experts local",
        weightBytes(),
        settings.kvBudgetBytes(),
        Math.max(prefillWorkspace(), decodeWorkspace()),
        settings.runtimeBytes());
  }

  /** The single-process engine ({@code generate --local}, {@code model bench}): everything. */
  public RoleNeed singleProcess() {
    return new RoleNeed(
        "single process",
        weightBytes(),
        settings.kvBudgetBytes(),
        Math.max(prefillWorkspace(), decodeWorkspace()),
        settings.runtimeBytes());
  }

  /** An expert shard hosting {@code hosted} of each group's experts. */
  public RoleNeed expertShard(int hosted) {
    int e = expertsPerGroup();
    return new RoleNeed(
        "expert shard (" + Math.min(hosted, e) + " of " + e + " experts)",
        routedExpertBytes(hosted),
        0,
        expertWorkspace(),
        settings.runtimeBytes());
  }

  /** The need of a worker in {@code role}: prefill or decode, experts local or remote. */
  public RoleNeed worker(boolean prefill, boolean localExperts) {
    if (localExperts) {
      return workerWithLocalExperts();
    }
    return prefill ? prefillWorker() : decodeWorker();
  }

  // ---- activations (fp32), estimates ----

  private long widestIntermediate() {
    long w = cfg.denseIntermediate();
    w = Math.max(w, cfg.sharedIntermediate());
    for (ExpertGroup g : cfg.expertGroups()) {
      w = Math.max(w, (long) g.intermediate() * cfg.topK());
    }
    return w;
  }

  /** One layer's KV of {@code tokens} tokens, widened to fp32 as attention reads it. */
  private long layerKvFp32(long tokens) {
    return tokens * 2L * cfg.numKvHeads() * cfg.headDim() * 4;
  }

  private long contextTokens() {
    return Math.max(1, Math.min(cfg.maxPositions(), kvPoolTokens()));
  }

  /**
   * A prefill chunk: its hidden states and projections, the widest MLP, its attention scores
   * against the longest context the pool holds, that context's KV of one layer in fp32, and the
   * last token's logits.
   */
  long prefillWorkspace() {
    long t = settings.prefillChunkTokens();
    long h = cfg.hidden();
    long qkv = (long) (cfg.numHeads() + 2 * cfg.numKvHeads()) * cfg.headDim();
    long rows = t * (6 * h + qkv + 3 * widestIntermediate()) * 4;
    long scores = t * contextTokens() * cfg.numHeads() * 4;
    return rows + scores + layerKvFp32(contextTokens()) + (long) cfg.vocabSize() * 4;
  }

  /**
   * What the vision encoder (tower and resampler) needs at its peak for one image at {@code
   * max_pixels}, its attention in blocks of {@link Settings#visionAttentionChunk} query patches:
   * about 2 × the largest block's {@code [heads, rows, n]} fp32 score tensor plus ~{@code 2 · width
   * + 3 · mlp} floats per patch of rows, fitted to the resident-set growth measured in
   * docs/PERFORMANCE.md ("Vision encoder": whole and chunked, 4096 and 24 336 patches, within ~15
   * %). Not part of a role's peak: it depends on the images served. 0 for a text model.
   */
  public long visionEncoderPeakBytes() {
    return cfg.vision().map(v -> visionPeak(v, settings.visionAttentionChunk())).orElse(0L);
  }

  /** Patches of an image at {@code max_pixels}. */
  public long visionMaxPatches() {
    return cfg.vision().map(MemoryPlan::maxPatches).orElse(0L);
  }

  private static long maxPatches(VisionConfig v) {
    return v.maxPixels() / ((long) v.patchSize() * v.patchSize());
  }

  private static long visionPeak(VisionConfig v, int chunk) {
    long n = maxPatches(v);
    // the largest block: the whole image, or a chunk (the last block may be one row more)
    long rows = n <= chunk + 1L ? n : Math.max(chunk, n - (n - 2) / chunk * chunk);
    long scores = (long) v.heads() * rows * n * 4;
    return 2 * scores + n * (2L * v.width() + 3L * v.mlpWidth()) * 4;
  }

  /**
   * A decode step of the largest batch: its rows, their logits, and the KV one layer reads — at
   * most the whole pool's tokens, widened to fp32.
   */
  long decodeWorkspace() {
    long b = settings.decodeMaxBatch();
    long h = cfg.hidden();
    long qkv = (long) (cfg.numHeads() + 2 * cfg.numKvHeads()) * cfg.headDim();
    long rows = b * (6 * h + qkv + 3 * widestIntermediate()) * 4;
    long logits = b * (long) cfg.vocabSize() * 4;
    long kvTokens = Math.min(kvPoolTokens(), b * cfg.maxPositions());
    return rows + logits + layerKvFp32(kvTokens);
  }

  /** The most token rows a shard gets in one call (a prefill chunk's top-k), in and out. */
  long expertWorkspace() {
    long rows =
        (long) Math.max(settings.prefillChunkTokens(), settings.decodeMaxBatch()) * cfg.topK();
    long inter = cfg.expertGroups().stream().mapToLong(ExpertGroup::intermediate).max().orElse(0);
    return rows * (2L * cfg.hidden() + 3 * inter) * 4;
  }

  // ---- the check ----

  /**
   * Refuses {@code need} when it does not fit in {@code availableBytes}.
   *
   * @param availableFrom where the available figure comes from, for the message (e.g. {@code
   *     pdserve.node.memory-limit}, "physical memory")
   * @throws InsufficientMemoryException saying what is needed, per part, and what there is
   */
  public static void requireFits(RoleNeed need, long availableBytes, String availableFrom) {
    if (need.totalBytes() <= availableBytes) {
      return;
    }
    throw new InsufficientMemoryException(
        String.format(
            "not enough memory for %s: needs %s (weights %s, KV pool %s, activations %s, runtime"
                + " %s) but has %s (%s); lower the need (quantization, pdserve.kv.budget-bytes,"
                + " experts on shards) or raise the limit",
            need.role(),
            gib(need.totalBytes()),
            gib(need.weightBytes()),
            gib(need.kvBytes()),
            gib(need.workspaceBytes()),
            gib(need.runtimeBytes()),
            gib(availableBytes),
            availableFrom));
  }

  /** {@code bytes} as GiB (or MiB below 1 GiB) with two decimals. */
  public static String gib(long bytes) {
    if (bytes >= 1L << 30) {
      return String.format("%.2f GiB", bytes / (double) (1L << 30));
    }
    return String.format("%.1f MiB", bytes / (double) (1L << 20));
  }

  /** A node's share does not fit the memory it has. */
  public static final class InsufficientMemoryException extends IllegalStateException {
    public InsufficientMemoryException(String message) {
      super(message);
    }
  }
}
