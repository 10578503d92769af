package dev.pdserve.model.weights;

import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.Objects;

/**
 * How {@link CheckpointConverter} writes its output.
 *
 * @param maxShardBytes data bytes per safetensors file before the output is sharded (a tensor
 *     larger than this gets a file of its own)
 * @param overwrite whether a non-empty output directory may be written into (its safetensors files
 *     and index are replaced; other files are left alone)
 * @param quantization how to store the linear weights: {@link WeightQuantization#NONE} writes every
 *     tensor fp32; a quantized mode writes the matrices it quantizes pre-quantized ({@link
 *     dev.pdserve.model.quant.StoredQuantization}), the bytes quantize-on-load makes (its compute
 *     must be fp32: compute is chosen when serving, not stored)
 */
public record ConvertOptions(
    long maxShardBytes, boolean overwrite, WeightQuantization quantization) {
  public static final long DEFAULT_MAX_SHARD_BYTES = 4L << 30;

  public ConvertOptions {
    if (maxShardBytes <= 0) {
      throw new IllegalArgumentException("maxShardBytes must be > 0, got " + maxShardBytes);
    }
    Objects.requireNonNull(quantization, "quantization");
    if (quantization.compute() != QuantCompute.FP32) {
      throw new IllegalArgumentException(
          "the compute is not stored (choose it when serving with --quantization-compute); convert"
              + " with fp32 compute");
    }
  }

  /** 4 GiB shards, never overwrite, fp32 weights. */
  public static ConvertOptions defaults() {
    return new ConvertOptions(DEFAULT_MAX_SHARD_BYTES, false, WeightQuantization.NONE);
  }

  public ConvertOptions withMaxShardBytes(long bytes) {
    return new ConvertOptions(bytes, overwrite, quantization);
  }

  public ConvertOptions withOverwrite(boolean allow) {
    return new ConvertOptions(maxShardBytes, allow, quantization);
  }

  /** Writes the matrices {@code q} quantizes pre-quantized ({@code none}: all fp32). */
  public ConvertOptions withQuantization(WeightQuantization q) {
    return new ConvertOptions(maxShardBytes, overwrite, q);
  }
}
