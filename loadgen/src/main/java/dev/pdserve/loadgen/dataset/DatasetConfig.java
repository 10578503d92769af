package dev.pdserve.loadgen.dataset;

import java.nio.file.Path;

/**
 * What the request stream contains; option names follow {@code vllm bench serve}.
 *
 * @param name {@code random}, {@code random-mm}, {@code sharegpt}, {@code prefix} or {@code trace}
 * @param inputLen random, random-mm: mean prompt (text) tokens
 * @param outputLen random and prefix: mean {@code max_tokens}
 * @param rangeRatio random: lengths uniform in {@code [len*(1-r), len*(1+r)]}
 * @param datasetPath sharegpt and trace: the file (trace default: the shared Mooncake trace)
 * @param sharegptOutputLen sharegpt: fixed {@code max_tokens} (0 = estimated from the reply)
 * @param numPrefixes prefix: distinct shared prefixes
 * @param suffixesPerPrefix prefix: requests per prefix
 * @param prefixLen prefix: tokens of each shared prefix
 * @param suffixLen prefix: tokens of each unique suffix
 * @param traceTimeScale trace: multiplies the trace's timestamps (0.1 = ten times faster)
 * @param traceLengthScale trace: multiplies input, output and block lengths (0.05 = 1/20)
 * @param traceLimit trace: use only the first N entries (0 = all)
 * @param images random-mm: the generated images of every request ({@link ImageOptions#NONE} for the
 *     text datasets, which ignore it)
 */
public record DatasetConfig(
    String name,
    int inputLen,
    int outputLen,
    double rangeRatio,
    Path datasetPath,
    int sharegptOutputLen,
    int numPrefixes,
    int suffixesPerPrefix,
    int prefixLen,
    int suffixLen,
    double traceTimeScale,
    double traceLengthScale,
    int traceLimit,
    ImageOptions images) {

  public DatasetConfig {
    images = images == null ? ImageOptions.NONE : images;
  }

  /** Defaults for every field; tests and callers override what they need. */
  public static DatasetConfig random(int inputLen, int outputLen) {
    return new DatasetConfig(
        "random", inputLen, outputLen, 0.0, null, 0, 0, 0, 0, 0, 1.0, 1.0, 0, ImageOptions.NONE);
  }

  public DatasetConfig withName(String n) {
    return new DatasetConfig(
        n,
        inputLen,
        outputLen,
        rangeRatio,
        datasetPath,
        sharegptOutputLen,
        numPrefixes,
        suffixesPerPrefix,
        prefixLen,
        suffixLen,
        traceTimeScale,
        traceLengthScale,
        traceLimit,
        images);
  }

  /** The same options with other images. */
  public DatasetConfig withImages(ImageOptions i) {
    return new DatasetConfig(
        name,
        inputLen,
        outputLen,
        rangeRatio,
        datasetPath,
        sharegptOutputLen,
        numPrefixes,
        suffixesPerPrefix,
        prefixLen,
        suffixLen,
        traceTimeScale,
        traceLengthScale,
        traceLimit,
        i);
  }

  /** With another dataset file. */
  public DatasetConfig withPath(Path p) {
    return new DatasetConfig(
        name,
        inputLen,
        outputLen,
        rangeRatio,
        p,
        sharegptOutputLen,
        numPrefixes,
        suffixesPerPrefix,
        prefixLen,
        suffixLen,
        traceTimeScale,
        traceLengthScale,
        traceLimit,
        images);
  }

  /** Checks the options the chosen dataset uses; messages name the option. */
  public void validate() {
    switch (name) {
      case "random" -> validateRandom();
      case "random-mm" -> {
        validateRandom();
        images.validate();
      }
      case "sharegpt" -> {
        if (datasetPath == null) {
          throw new IllegalArgumentException(
              "--dataset-name sharegpt needs --dataset-path FILE (a ShareGPT-format JSON array)");
        }
        if (sharegptOutputLen < 0) {
          throw new IllegalArgumentException(
              "--sharegpt-output-len must be >= 0, got " + sharegptOutputLen);
        }
      }
      case "prefix" -> {
        positive("--num-prefixes", numPrefixes);
        positive("--suffixes-per-prefix", suffixesPerPrefix);
        positive("--prefix-len", prefixLen);
        positive("--suffix-len", suffixLen);
        positive("--output-len", outputLen);
      }
      case "trace" -> {
        if (!(traceTimeScale > 0) || !(traceLengthScale > 0)) {
          throw new IllegalArgumentException(
              "--trace-time-scale and --trace-length-scale must be > 0, got "
                  + traceTimeScale
                  + " and "
                  + traceLengthScale);
        }
        if (traceLimit < 0) {
          throw new IllegalArgumentException("--trace-limit must be >= 0, got " + traceLimit);
        }
      }
      default ->
          throw new IllegalArgumentException(
              "--dataset-name must be random, random-mm, sharegpt, prefix or trace, got '"
                  + name
                  + "'");
    }
  }

  private void validateRandom() {
    positive("--input-len", inputLen);
    positive("--output-len", outputLen);
    if (!(rangeRatio >= 0 && rangeRatio < 1)) {
      throw new IllegalArgumentException("--range-ratio must be in [0, 1), got " + rangeRatio);
    }
  }

  private static void positive(String option, int v) {
    if (v < 1) {
      throw new IllegalArgumentException(option + " must be >= 1, got " + v);
    }
  }
}
