package dev.pdserve.model.weights;

/**
 * How {@link CheckpointConverter} writes its output.
 *
 * @param maxShardBytes data bytes per safetensors file before the output is sharded (a tensor
 *     larger than this gets a file of its own)
 * @param overwrite whether a non-empty output directory may be written into (its safetensors files
 *     and index are replaced; other files are left alone)
 */
public record ConvertOptions(long maxShardBytes, boolean overwrite) {
  public static final long DEFAULT_MAX_SHARD_BYTES = 4L << 30;

  public ConvertOptions {
    if (maxShardBytes <= 0) {
      throw new IllegalArgumentException("maxShardBytes must be > 0, got " + maxShardBytes);
    }
  }

  /** 4 GiB shards, never overwrite. */
  public static ConvertOptions defaults() {
    return new ConvertOptions(DEFAULT_MAX_SHARD_BYTES, false);
  }

  public ConvertOptions withMaxShardBytes(long bytes) {
    return new ConvertOptions(bytes, overwrite);
  }

  public ConvertOptions withOverwrite(boolean allow) {
    return new ConvertOptions(maxShardBytes, allow);
  }
}
