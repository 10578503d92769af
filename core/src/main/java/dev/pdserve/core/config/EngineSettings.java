package dev.pdserve.core.config;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.quant.WeightQuantization;
import java.nio.file.Path;
import java.util.Optional;

/**
 * What a node runs.
 *
 * @param kvBudgetBytes memory for the paged KV pool
 * @param expertRange routed experts this node hosts (expert shards); empty = all experts
 * @param modelPreset built-in model shape (ignored when a model directory is given)
 * @param modelDir directory with an ERNIE checkpoint ({@code config.json}, safetensors)
 * @param ortThreads ONNX Runtime intra-op threads, 0 = ORT's default
 * @param modelSeed seed of the dummy weights of a preset (every node of a cluster must agree)
 * @param expertsMode where a worker's routed experts run
 * @param prefillChunkTokens a prompt is prefilled in chunks of at most this many tokens
 * @param decodeMaxBatch sequences in one decode step at most
 * @param ortCuda run the graphs on ONNX Runtime's CUDA execution provider (needs the GPU build)
 * @param kvDtype element type of the KV cache (every worker of a cluster must agree)
 * @param encoderCacheBytes bytes of encoded images a worker of a vision model keeps by digest
 *     ({@code pdserve.vision.encoder-cache-bytes}); 0 = none
 * @param quantization weight-only quantization ({@code pdserve.model.quantization} and {@code
 *     pdserve.model.quantization-block-size}, {@code pdserve.model.quantization-compute}, {@code
 *     pdserve.model.quantize-embeddings}; every node of a cluster must agree)
 * @param lowBitDummyWeights a preset's quantized matrices are generated directly in their format
 *     ({@code pdserve.model.low-bit-dummy-weights}; every node of a cluster must agree)
 * @param visionEnabled a worker of a vision model loads its vision tower and takes images ({@code
 *     pdserve.vision.enabled}); false = text only
 * @param visionAttentionChunk query patches per block of the vision tower's attention ({@code
 *     pdserve.vision.attention-chunk})
 */
public record EngineSettings(
    long kvBudgetBytes,
    Optional<ExpertRange> expertRange,
    String modelPreset,
    Optional<Path> modelDir,
    int ortThreads,
    long modelSeed,
    ExpertsMode expertsMode,
    int prefillChunkTokens,
    int decodeMaxBatch,
    boolean ortCuda,
    KvDtype kvDtype,
    long encoderCacheBytes,
    WeightQuantization quantization,
    boolean lowBitDummyWeights,
    boolean visionEnabled,
    int visionAttentionChunk) {
  /** Encoder cache of a worker unless configured otherwise: 256 MiB. */
  public static final long DEFAULT_ENCODER_CACHE_BYTES = 256L << 20;

  /** How this node computes and stores the model (the reference engine to compare must match). */
  public Numerics numerics() {
    return new Numerics(kvDtype, quantization);
  }
}
