package dev.pdserve.model.weights;

/**
 * Exact conversions between fp32 and the two 16-bit float formats checkpoints use: IEEE binary16
 * (F16) and bfloat16 (BF16). Widening is exact for every input (F16 subnormals, infinities and NaN
 * payloads included); narrowing rounds to nearest, ties to even, and keeps NaNs quiet NaNs.
 */
public final class HalfFloats {
  private HalfFloats() {}

  /** The fp32 value of the bfloat16 bit pattern {@code bits} (low 16 bits used). */
  public static float bf16ToFloat(int bits) {
    return Float.intBitsToFloat((bits & 0xffff) << 16);
  }

  /** The bfloat16 bit pattern nearest {@code f} (round to nearest, ties to even). */
  public static short floatToBf16(float f) {
    int bits = Float.floatToRawIntBits(f);
    if ((bits & 0x7fffffff) > 0x7f800000) {
      return (short) ((bits >>> 16) | 0x0040); // NaN: keep sign and top payload, force quiet
    }
    int rounded = bits + 0x7fff + ((bits >>> 16) & 1);
    return (short) (rounded >>> 16);
  }

  /** The fp32 value of the IEEE binary16 bit pattern {@code bits} (low 16 bits used). */
  public static float f16ToFloat(int bits) {
    int sign = (bits & 0x8000) << 16;
    int exp = (bits >>> 10) & 0x1f;
    int mant = bits & 0x3ff;
    if (exp == 0x1f) {
      return Float.intBitsToFloat(
          sign | 0x7f800000 | (mant << 13)); // infinity or NaN (payload kept)
    }
    if (exp == 0) {
      if (mant == 0) {
        return Float.intBitsToFloat(sign); // signed zero
      }
      // Subnormal: mant × 2^-24, renormalised into an fp32 normal number.
      int shift = Integer.numberOfLeadingZeros(mant) - 21; // moves the top set bit to bit 10
      mant = (mant << shift) & 0x3ff;
      exp = 1 - shift;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  /** The IEEE binary16 bit pattern nearest {@code f} (round to nearest, ties to even). */
  public static short floatToF16(float f) {
    int bits = Float.floatToRawIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    int abs = bits & 0x7fffffff;
    if (abs >= 0x7f800000) {
      int nan = abs > 0x7f800000 ? 0x0200 | ((abs >>> 13) & 0x3ff) : 0;
      return (short) (sign | 0x7c00 | nan);
    }
    if (abs >= 0x477ff000) { // 65520 and above round to infinity
      return (short) (sign | 0x7c00);
    }
    if (abs < 0x38800000) { // below 2^-14: a subnormal half, or zero
      if (abs < 0x33000000) { // below 2^-25 rounds to zero (2^-25 itself ties to the even zero)
        return (short) sign;
      }
      int e = abs >>> 23;
      int m = (abs & 0x7fffff) | 0x800000;
      int shift = 126 - e; // value / 2^-24 = m >> shift
      return (short) (sign | roundShift(m, shift));
    }
    int rebiased = abs - (112 << 23);
    return (short) (sign | roundShift(rebiased, 13)); // a carry into the exponent is still correct
  }

  private static int roundShift(int value, int shift) {
    int q = value >>> shift;
    int rem = value & ((1 << shift) - 1);
    int half = 1 << (shift - 1);
    if (rem > half || (rem == half && (q & 1) != 0)) {
      q++;
    }
    return q;
  }
}
