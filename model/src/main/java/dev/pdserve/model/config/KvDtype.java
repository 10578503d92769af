package dev.pdserve.model.config;

import dev.pdserve.model.weights.HalfFloats;
import java.util.Locale;

/**
 * The element type of the KV cache: what a key or value is rounded to when a layer computes it, and
 * what the paged pool and the KV transfer store. The attention always reads fp32 (a half value
 * widens exactly), so every topology reads the same rounded values.
 *
 * <p>{@link #FP16} is IEEE binary16, {@link #BF16} bfloat16; both round to nearest, ties to even.
 */
public enum KvDtype {
  FP32(4),
  FP16(2),
  BF16(2);

  /** What {@link #parse} says when it refuses a value. */
  public static final String MUST_BE = "must be fp32, fp16 or bf16";

  private final int elementBytes;

  KvDtype(int elementBytes) {
    this.elementBytes = elementBytes;
  }

  /** Bytes of one stored element: 4 for fp32, 2 for fp16 and bf16. */
  public int elementBytes() {
    return elementBytes;
  }

  /**
   * The name in configuration and on the command line: {@code fp32}, {@code fp16}, {@code bf16}.
   */
  public String configName() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** Whether elements are 16-bit (rounded when computed, widened when read). */
  public boolean isHalf() {
    return this != FP32;
  }

  /**
   * The dtype named {@code text} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the choices, e.g. {@code must be fp32, fp16 or bf16,
   *     got 'fp8'}
   */
  public static KvDtype parse(String text) {
    for (KvDtype d : values()) {
      if (d.configName().equalsIgnoreCase(text.trim())) {
        return d;
      }
    }
    throw new IllegalArgumentException(MUST_BE + ", got '" + text + "'");
  }

  /** {@code f} as this dtype stores it: itself for fp32, else rounded to the nearest half value. */
  public float round(float f) {
    return switch (this) {
      case FP32 -> f;
      case FP16 -> HalfFloats.f16ToFloat(HalfFloats.floatToF16(f));
      case BF16 -> HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(f));
    };
  }

  /** The 16-bit pattern of {@code f} (rounded to nearest even) for a half dtype. */
  public short toBits(float f) {
    return switch (this) {
      case FP16 -> HalfFloats.floatToF16(f);
      case BF16 -> HalfFloats.floatToBf16(f);
      case FP32 -> throw new UnsupportedOperationException("fp32 elements have 32 bits");
    };
  }

  /** The fp32 value of the 16-bit pattern {@code bits} (low 16 bits) of a half dtype: exact. */
  public float fromBits(int bits) {
    return switch (this) {
      case FP16 -> HalfFloats.f16ToFloat(bits);
      case BF16 -> HalfFloats.bf16ToFloat(bits);
      case FP32 -> throw new UnsupportedOperationException("fp32 elements have 32 bits");
    };
  }
}
