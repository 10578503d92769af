package dev.pdserve.model.vision;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.graph.ResamplerGraph;
import dev.pdserve.model.graph.VisionTowerGraph;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.util.Map;

/**
 * Runs the vision encoder of a VL model: one image's patches through the ViT ({@link
 * VisionTowerGraph}) and the resampler ({@link ResamplerGraph}), two ONNX Runtime sessions this
 * object owns and closes. The weights must outlive it. Thread-safe: sessions may be run
 * concurrently.
 *
 * <p>Attention is computed in blocks of at most {@code attentionChunk} query rows ({@link
 * VisionTowerGraph}): an image of at most that many patches takes one {@code [heads, n, n]} score
 * tensor per ViT block, a larger one a {@code [heads, chunk, n]} tensor at a time, so the released
 * pixel bound (24,708 patches) needs ~0.4 GB of scores per block at the default chunk instead of 39
 * GB.
 */
public final class VisionEncoder implements AutoCloseable {
  /**
   * Query rows per attention block unless configured otherwise ({@code
   * pdserve.vision.attention-chunk}): 256, so the full-size tower's scores at the released pixel
   * bound are {@code 16 · 256 · 24 708 · 4} B ≈ 386 MiB per block.
   */
  public static final int DEFAULT_ATTENTION_CHUNK = 256;

  private final ModelConfig cfg;
  private final VisionConfig vision;
  private final OrtRuntime runtime;
  private final VisionRope rope;
  private final OrtGraph tower;
  private final OrtGraph resampler;
  private final int attentionChunk;

  /**
   * Builds the tower and resampler sessions of {@code cfg}'s vision encoder.
   *
   * @param attentionChunk query rows per attention block, at least 1 ({@link
   *     #DEFAULT_ATTENTION_CHUNK} unless configured)
   */
  public VisionEncoder(
      ModelConfig cfg, ModelWeights weights, OrtRuntime runtime, int attentionChunk) {
    this.cfg = cfg;
    this.vision =
        cfg.vision()
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "model " + cfg.name() + " has no vision encoder (no vision_config)"));
    this.runtime = runtime;
    this.rope = new VisionRope(vision);
    this.attentionChunk = attentionChunk;
    this.tower = session(VisionTowerGraph.build(vision, attentionChunk), weights);
    OrtGraph r;
    try {
      r = session(ResamplerGraph.build(cfg), weights);
    } catch (RuntimeException e) {
      tower.close();
      throw e;
    }
    this.resampler = r;
  }

  private OrtGraph session(GraphBuilder b, ModelWeights weights) {
    var model = b.build();
    // an image's patch count changes from run to run: no memory pattern (it doubled the peak)
    return OrtGraph.create(
        model.getGraph().getName(),
        model,
        b.weights().keySet(),
        weights.forGraph(b.weights().keySet()),
        runtime,
        OrtGraph.MemoryPattern.OFF);
  }

  public VisionConfig vision() {
    return vision;
  }

  /** Query rows per attention block of the tower. */
  public int attentionChunk() {
    return attentionChunk;
  }

  /** The image's language-model rows, {@code [image.tokens(), hidden]}, in placeholder order. */
  public float[] encode(PatchedImage image) {
    return resample(features(image), image.patchCount());
  }

  /** The ViT's output features, {@code [patches, width]}. */
  public float[] features(PatchedImage image) {
    check(image);
    float[][] angles = rope.angles(image);
    int n = image.patchCount();
    int half = vision.headDim() / 2;
    try (OnnxTensor p = runtime.floatTensor(image.patches(), n, image.patchValues());
        OnnxTensor c = runtime.floatTensor(angles[0], n, half);
        OnnxTensor s = runtime.floatTensor(angles[1], n, half);
        OrtSession.Result r = tower.run(Map.of("patches", p, "cos", c, "sin", s))) {
      return OrtGraph.floats(r, 0);
    }
  }

  private float[] resample(float[] features, int patches) {
    try (OnnxTensor f = runtime.floatTensor(features, patches, vision.width());
        OrtSession.Result r = resampler.run(Map.of("features", f))) {
      return OrtGraph.floats(r, 0);
    }
  }

  private void check(PatchedImage image) {
    if (image.patchValues() != vision.patchValues() || image.merge() != vision.spatialMerge()) {
      throw new IllegalArgumentException(
          "image patches of "
              + image.patchValues()
              + " values merged "
              + image.merge()
              + "x"
              + image.merge()
              + " do not fit model "
              + cfg.name()
              + " ("
              + vision.patchValues()
              + " values, merge "
              + vision.spatialMerge()
              + ")");
    }
  }

  @Override
  public void close() {
    try {
      resampler.close();
    } finally {
      tower.close();
    }
  }
}
