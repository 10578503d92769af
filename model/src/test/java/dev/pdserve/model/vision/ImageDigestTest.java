package dev.pdserve.model.vision;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** An image's digest: its bytes and every preprocessing setting, nothing else. */
class ImageDigestTest {
  static final VisionConfig TINY = ModelPresets.get("tiny").vision().orElseThrow();
  static final EncodedImage IMAGE = TestImages.png(56, 56, 1);

  static VisionConfig with(UnaryOperator<Object[]> change) {
    VisionConfig v = TINY;
    Object[] f = {
      v.minPixels(), v.maxPixels(), v.imageMean(), v.imageStd(), v.patchSize(), v.spatialMerge()
    };
    f = change.apply(f);
    return new VisionConfig(
        v.depth(),
        v.width(),
        v.heads(),
        v.mlpWidth(),
        (Integer) f[4],
        (Integer) f[5],
        v.temporalMerge(),
        v.inChannels(),
        v.layerNormEps(),
        v.ropeTheta(),
        v.temporalMlp(),
        (Long) f[0],
        (Long) f[1],
        castList(f[2]),
        castList(f[3]),
        v.tokens());
  }

  @SuppressWarnings("unchecked")
  static List<Double> castList(Object o) {
    return (List<Double>) o;
  }

  @Test
  void theSameBytesAndSettingsGiveTheSameDigest() {
    ImageDigest a = ImageDigest.of(IMAGE, TINY);
    ImageDigest b = ImageDigest.of(new EncodedImage(IMAGE.bytes()), with(f -> f));
    assertEquals(a, b, "same bytes, same settings");
    assertEquals(a.hashCode(), b.hashCode());
    assertEquals(64, a.hex().length());
    assertEquals(a.hex().substring(0, 12), a.toString());
  }

  @Test
  void otherBytesGiveAnotherDigest() {
    byte[] other = IMAGE.bytes();
    other[other.length - 1] ^= 1;
    assertNotEquals(ImageDigest.of(IMAGE, TINY), ImageDigest.of(new EncodedImage(other), TINY));
    assertNotEquals(ImageDigest.of(IMAGE, TINY), ImageDigest.of(TestImages.png(56, 56, 2), TINY));
  }

  @Test
  void everyPreprocessingSettingChangesTheDigest() {
    ImageDigest base = ImageDigest.of(IMAGE, TINY);
    List<VisionConfig> changed =
        List.of(
            with(f -> new Object[] {56L * 56 * 4, f[1], f[2], f[3], f[4], f[5]}),
            with(f -> new Object[] {f[0], 28L * 28 * 300, f[2], f[3], f[4], f[5]}),
            with(f -> new Object[] {f[0], f[1], List.of(0.5, 0.5, 0.5), f[3], f[4], f[5]}),
            with(f -> new Object[] {f[0], f[1], f[2], List.of(0.5, 0.5, 0.5), f[4], f[5]}),
            with(f -> new Object[] {f[0], f[1], f[2], f[3], 16, f[5]}),
            with(f -> new Object[] {28L * 28 * 4, f[1], f[2], f[3], 14, 1}));
    for (VisionConfig v : changed) {
      assertNotEquals(base, ImageDigest.of(IMAGE, v), "settings " + ImageDigest.settings(v));
    }
  }

  @Test
  void aDigestIsThirtyTwoBytes() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> new ImageDigest(new byte[31]));
    assertEquals("an image digest is 32 bytes (SHA-256), got 31", e.getMessage());
  }
}
