package dev.pdserve.model.weights;

import dev.pdserve.model.quant.StoredQuantization;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * What {@link CheckpointConverter#convert} wrote.
 *
 * @param outDir the output directory
 * @param tensorsWritten safetensors tensors written (canonical fp32 tensors, and for a quantized
 *     conversion each quantized matrix's codes, scales and zero points)
 * @param quantizedMatrices matrices written pre-quantized (0 without quantization)
 * @param quantization how the quantized matrices are stored, or empty for all-fp32 output
 * @param bytesWritten total size of the safetensors files written
 * @param files every file written, in the order written (weights, index, config, tokenizer files)
 * @param skipped stored tensors of the source that the engine does not use and were not written
 */
public record ConvertReport(
    Path outDir,
    int tensorsWritten,
    int quantizedMatrices,
    Optional<StoredQuantization> quantization,
    long bytesWritten,
    List<Path> files,
    List<String> skipped) {
  public ConvertReport {
    files = List.copyOf(files);
    skipped = List.copyOf(skipped);
  }
}
