package dev.pdserve.model.weights;

import dev.pdserve.model.config.ModelConfig;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Checks that a weight source fits a model config: every tensor of {@link WeightNames#expected} is
 * present with its expected shape, and the small tensors a bad export most often spoils (norms,
 * gates, correction biases) hold only finite values. Shapes come from {@link WeightSource#shape},
 * so a checkpoint is checked from its headers plus those few small tensors.
 */
public final class WeightValidator {
  /** Problems spelled out in the exception message; the rest are counted. */
  static final int MAX_LISTED = 20;

  private WeightValidator() {}

  /**
   * @throws WeightException listing every problem (the message shows the first {@value
   *     #MAX_LISTED}; {@link WeightException#problems()} holds all)
   */
  public static void check(ModelConfig cfg, WeightSource src) {
    List<String> problems = problems(cfg, src);
    if (problems.isEmpty()) {
      return;
    }
    StringBuilder msg = new StringBuilder();
    msg.append("weights from ")
        .append(src.describe())
        .append(" do not fit model ")
        .append(cfg.name())
        .append(": ")
        .append(problems.size())
        .append(problems.size() == 1 ? " problem" : " problems");
    for (int i = 0; i < Math.min(problems.size(), MAX_LISTED); i++) {
      msg.append("\n  ").append(problems.get(i));
    }
    if (problems.size() > MAX_LISTED) {
      msg.append("\n  ... and ").append(problems.size() - MAX_LISTED).append(" more");
    }
    throw new WeightException(msg.toString(), problems);
  }

  /**
   * Every problem found, one line each, in {@link WeightNames#expected} order; empty when the
   * weights fit.
   */
  public static List<String> problems(ModelConfig cfg, WeightSource src) {
    List<String> problems = new ArrayList<>();
    Map<String, long[]> expected = WeightNames.expected(cfg);
    long visionTensors = expected.keySet().stream().filter(VisionWeightNames::isVision).count();
    long visionMissing =
        expected.keySet().stream()
            .filter(n -> VisionWeightNames.isVision(n) && src.shape(n).isEmpty())
            .count();
    boolean noVision = visionTensors > 0 && visionMissing == visionTensors;
    for (Map.Entry<String, long[]> e : expected.entrySet()) {
      String name = e.getKey();
      Optional<long[]> shape = src.shape(name);
      if (shape.isEmpty()) {
        if (noVision && VisionWeightNames.isVision(name)) {
          continue; // reported once below
        }
        problems.add("missing tensor " + name);
        continue;
      }
      if (!Arrays.equals(shape.get(), e.getValue())) {
        problems.add(
            "tensor "
                + name
                + " has shape "
                + Arrays.toString(shape.get())
                + ", expected "
                + Arrays.toString(e.getValue()));
        continue;
      }
      if (isSmall(name)) {
        try {
          src.find(name).ifPresent(t -> nonFinite(t).ifPresent(problems::add));
        } catch (WeightException ex) {
          problems.add(ex.getMessage());
        }
      }
    }
    if (noVision) {
      problems.add(
          "missing the vision encoder: none of its "
              + visionTensors
              + " tensors ("
              + VisionWeightNames.TOWER
              + "*, "
              + VisionWeightNames.RESAMPLER
              + "*, e.g. "
              + VisionWeightNames.PATCH_EMBED
              + ") is present, but the config has a vision_config");
    }
    return problems;
  }

  private static boolean isSmall(String name) {
    return name.endsWith("layernorm.weight")
        || name.equals(WeightNames.FINAL_NORM)
        || name.endsWith("e_score_correction_bias")
        || name.contains(".mlp.gate.weight")
        || VisionWeightNames.isNormScale(name);
  }

  private static Optional<String> nonFinite(FloatTensor t) {
    FloatBuffer d = t.data();
    int count = 0;
    int first = -1;
    for (int i = 0, n = d.capacity(); i < n; i++) {
      if (!Float.isFinite(d.get(i))) {
        if (first < 0) {
          first = i;
        }
        count++;
      }
    }
    if (count == 0) {
      return Optional.empty();
    }
    return Optional.of(
        "tensor "
            + t.name()
            + " holds "
            + count
            + " non-finite value"
            + (count == 1 ? "" : "s")
            + " (first at index "
            + first
            + ": "
            + d.get(first)
            + ")");
  }
}
