package dev.pdserve.model.quant;

import java.util.Locale;

/**
 * What ONNX Runtime's {@code com.microsoft.MatMulNBits} computes a low-bit weight's product in
 * ({@code pdserve.model.quantization-compute}): its {@code accuracy_level}. Storage does not depend
 * on it (same codes, scales, zero points and tensor names).
 *
 * <ul>
 *   <li>{@link #FP32}: {@code accuracy_level} 0, activations fp32 (the weights dequantized).
 *   <li>{@link #INT8}: {@code accuracy_level} 4, activations quantized to int8 per block and the
 *       dot products computed in integers (ONNX Runtime's int8-activation kernels); about 0.2-0.3 %
 *       relative error against fp32 compute, and a row's output does not depend on the other rows
 *       once a call has two or more rows (the engine always pads to two).
 * </ul>
 */
public enum QuantCompute {
  FP32(0),
  INT8(4);

  /** What {@link #parse} says when it refuses a value. */
  public static final String MUST_BE = "must be fp32 or int8";

  private final int accuracyLevel;

  QuantCompute(int accuracyLevel) {
    this.accuracyLevel = accuracyLevel;
  }

  /** MatMulNBits' {@code accuracy_level} attribute: 0 or 4. */
  public int accuracyLevel() {
    return accuracyLevel;
  }

  /** The name in configuration and on the command line: {@code fp32}, {@code int8}. */
  public String configName() {
    return name().toLowerCase(Locale.ROOT);
  }

  /**
   * The compute named {@code text} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the choices
   */
  public static QuantCompute parse(String text) {
    for (QuantCompute c : values()) {
      if (c.configName().equalsIgnoreCase(text.trim())) {
        return c;
      }
    }
    throw new IllegalArgumentException(MUST_BE + ", got '" + text + "'");
  }
}
