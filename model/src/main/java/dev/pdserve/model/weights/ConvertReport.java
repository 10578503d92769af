package dev.pdserve.model.weights;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@link CheckpointConverter#convert} wrote.
 *
 * @param outDir the output directory
 * @param tensorsWritten tensors written under canonical names
 * @param bytesWritten total size of the safetensors files written
 * @param files every file written, in the order written (weights, index, config, tokenizer files)
 * @param skipped stored tensors of the source that the engine does not use and were not written
 */
public record ConvertReport(
    Path outDir, int tensorsWritten, long bytesWritten, List<Path> files, List<String> skipped) {
  public ConvertReport {
    files = List.copyOf(files);
    skipped = List.copyOf(skipped);
  }
}
