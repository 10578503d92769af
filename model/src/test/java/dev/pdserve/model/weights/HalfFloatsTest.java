package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class HalfFloatsTest {
  @Test
  void everyF16PatternWidensExactlyAndNarrowsBack() {
    for (int bits = 0; bits < 0x10000; bits++) {
      float f = HalfFloats.f16ToFloat(bits);
      int exp = (bits >>> 10) & 0x1f;
      int mant = bits & 0x3ff;
      if (exp == 0x1f && mant != 0) {
        assertTrue(Float.isNaN(f), () -> "NaN pattern lost");
        continue;
      }
      // Reference value computed in double, independently of the bit tricks.
      double ref =
          exp == 0
              ? mant * 0x1p-24
              : exp == 0x1f
                  ? Double.POSITIVE_INFINITY
                  : (1 + mant / 1024.0) * Math.pow(2, exp - 15);
      if ((bits & 0x8000) != 0) {
        ref = -ref;
      }
      int b = bits;
      assertEquals((float) ref, f, () -> "f16 0x" + Integer.toHexString(b));
      assertEquals(
          bits,
          HalfFloats.floatToF16(f) & 0xffff,
          () -> "f16 0x" + Integer.toHexString(b) + " does not round-trip");
    }
  }

  @Test
  void f16KnownValues() {
    assertEquals(0x1p-24f, HalfFloats.f16ToFloat(0x0001)); // smallest subnormal
    assertEquals(65504f, HalfFloats.f16ToFloat(0x7bff)); // largest finite
    assertEquals(Float.NEGATIVE_INFINITY, HalfFloats.f16ToFloat(0xfc00));
    assertEquals(
        Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(HalfFloats.f16ToFloat(0x8000)));
    assertTrue(Float.isNaN(HalfFloats.f16ToFloat(0x7e00)));
  }

  @Test
  void floatToF16RoundsToNearestEven() {
    assertEquals(
        0x3c00, HalfFloats.floatToF16(1f + 0x1p-11f)); // tie between 1 and 1+2^-10: even (1)
    assertEquals(0x3c02, HalfFloats.floatToF16(1f + 3 * 0x1p-11f)); // tie: even (1 + 2^-9)
    assertEquals(0x3c01, HalfFloats.floatToF16(1f + 0x1p-11f + 0x1p-20f)); // above the tie
    assertEquals(0x7bff, HalfFloats.floatToF16(65519f));
    assertEquals(0x7c00, HalfFloats.floatToF16(65520f)); // tie with the odd max: infinity
    assertEquals(0x0000, HalfFloats.floatToF16(0x1p-25f)); // tie with zero: zero
    assertEquals(0x0001, HalfFloats.floatToF16(0x1p-25f + 0x1p-40f));
    assertEquals(0x0002, HalfFloats.floatToF16(3 * 0x1p-25f)); // subnormal tie: even
    assertEquals(0x0400, HalfFloats.floatToF16(0x1p-14f - 0x1p-30f)); // rounds up into the normals
    assertEquals(0xfc00, HalfFloats.floatToF16(-1e9f) & 0xffff);
    assertEquals(0x7e00, HalfFloats.floatToF16(Float.NaN) & 0x7e00);
  }

  @Test
  void bf16RoundsToNearestEvenAndWidensExactly() {
    for (int bits = 0; bits < 0x10000; bits++) {
      float f = HalfFloats.bf16ToFloat(bits);
      if (!Float.isNaN(f)) {
        assertEquals(bits, HalfFloats.floatToBf16(f) & 0xffff);
      }
    }
    assertEquals(0x3f80, HalfFloats.floatToBf16(Float.intBitsToFloat(0x3f808000))); // tie: even
    assertEquals(
        0x3f82, HalfFloats.floatToBf16(Float.intBitsToFloat(0x3f818000))); // tie: even (up)
    assertEquals(0x3f81, HalfFloats.floatToBf16(Float.intBitsToFloat(0x3f808001)));
    assertEquals(0x7f80, HalfFloats.floatToBf16(Float.MAX_VALUE)); // rounds to infinity
    assertTrue(
        Float.isNaN(
            HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(Float.intBitsToFloat(0x7f800001)))));
  }
}
