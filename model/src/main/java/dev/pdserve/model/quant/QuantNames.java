package dev.pdserve.model.quant;

import java.util.Optional;

/**
 * Names of the tensors derived from a checkpoint weight by quantizing it: {@code
 * base#q4b64z.codes}, {@code .scales}, {@code .zp} in MatMulNBits' shapes, and {@code .gcodes},
 * {@code .gscales}, {@code .gzp} — the same bytes in GatherBlockQuantized's 2-D shapes (a table
 * gathered by rows). They are not checkpoint tensors; the engine's weights make them from {@code
 * base} on first use.
 */
public final class QuantNames {
  /** Separator between the base name and the format tag. */
  public static final String SEP = "#";

  private QuantNames() {}

  public static String codes(String base, QuantFormat f) {
    return base + SEP + f.tag() + ".codes";
  }

  public static String scales(String base, QuantFormat f) {
    return base + SEP + f.tag() + ".scales";
  }

  public static String zeroPoints(String base, QuantFormat f) {
    return base + SEP + f.tag() + ".zp";
  }

  /** The codes as GatherBlockQuantized reads them: {@code uint8 [n, blocks·blobBytes]}. */
  public static String gatherCodes(String base, QuantFormat f) {
    return base + SEP + f.tag() + "." + GATHER_CODES;
  }

  /** The scales as GatherBlockQuantized reads them: {@code float [n, blocks]}. */
  public static String gatherScales(String base, QuantFormat f) {
    return base + SEP + f.tag() + "." + GATHER_SCALES;
  }

  /** The zero points as GatherBlockQuantized reads them: {@code uint8 [n, ⌈blocks·bits/8⌉]}. */
  public static String gatherZeroPoints(String base, QuantFormat f) {
    return base + SEP + f.tag() + "." + GATHER_ZERO_POINTS;
  }

  /** Parts of the gather layout ({@link Parsed#part()}). */
  public static final String GATHER_CODES = "gcodes";

  public static final String GATHER_SCALES = "gscales";
  public static final String GATHER_ZERO_POINTS = "gzp";

  /** A derived name taken apart: the base weight, its format and which part. */
  public record Parsed(String base, QuantFormat format, String part) {
    /** Whether the part is one of the gather layout's ({@link #gatherCodes} and the others). */
    public boolean isGatherLayout() {
      return part.equals(GATHER_CODES)
          || part.equals(GATHER_SCALES)
          || part.equals(GATHER_ZERO_POINTS);
    }
  }

  /** {@code name} taken apart, or empty when it is not a derived quantized name. */
  public static Optional<Parsed> parse(String name) {
    int cut = name.lastIndexOf(SEP + "q");
    if (cut < 0) {
      return Optional.empty();
    }
    String rest = name.substring(cut + 1);
    int dot = rest.indexOf('.');
    if (dot < 0) {
      return Optional.empty();
    }
    try {
      return Optional.of(
          new Parsed(
              name.substring(0, cut),
              QuantFormat.parseTag(rest.substring(0, dot)),
              rest.substring(dot + 1)));
    } catch (IllegalArgumentException e) {
      return Optional.empty();
    }
  }
}
