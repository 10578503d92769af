package dev.pdserve.model.vision;

/**
 * An image ready for the vision encoder: {@code gridH × gridW} patches (the resized image is {@code
 * gridH · patch} pixels high), each flattened channel-major to {@code patchValues} floats, ordered
 * by {@code merge × merge} window: windows row-major over the image, patches row-major inside a
 * window. Patch i's position in the patch grid is ({@link #patchRow}, {@link #patchCol}). Every
 * {@code merge²} consecutive patches become one language-model row, a {@link #mergedH} × {@link
 * #mergedW} grid of rows.
 */
public record PatchedImage(int gridH, int gridW, int merge, int patchValues, float[] patches) {
  public PatchedImage {
    if (gridH <= 0 || gridW <= 0 || merge <= 0 || gridH % merge != 0 || gridW % merge != 0) {
      throw new IllegalArgumentException(
          "a " + gridH + "x" + gridW + " patch grid cannot be merged " + merge + "x" + merge);
    }
    if (patches.length != (long) gridH * gridW * patchValues) {
      throw new IllegalArgumentException(
          gridH
              + "x"
              + gridW
              + " patches of "
              + patchValues
              + " values need "
              + (long) gridH * gridW * patchValues
              + " floats, got "
              + patches.length);
    }
  }

  public int patchCount() {
    return gridH * gridW;
  }

  /** Rows of merged patches: the image's height in language-model tokens. */
  public int mergedH() {
    return gridH / merge;
  }

  /** Columns of merged patches. */
  public int mergedW() {
    return gridW / merge;
  }

  /** Language-model rows (image placeholder tokens) the image becomes. */
  public int tokens() {
    return mergedH() * mergedW();
  }

  /** Patch-grid row of patch {@code i} (in merge-window order). */
  public int patchRow(int i) {
    int window = i / (merge * merge);
    int inWindow = i % (merge * merge);
    return (window / mergedW()) * merge + inWindow / merge;
  }

  /** Patch-grid column of patch {@code i}. */
  public int patchCol(int i) {
    int window = i / (merge * merge);
    int inWindow = i % (merge * merge);
    return (window % mergedW()) * merge + inWindow % merge;
  }
}
