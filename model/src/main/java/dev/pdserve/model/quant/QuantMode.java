package dev.pdserve.model.quant;

import java.util.Locale;

/**
 * Which weights are stored in few bits ({@code pdserve.model.quantization}); see {@link
 * WeightQuantization} for the bits of each component in each mode.
 */
public enum QuantMode {
  /** Every weight fp32. */
  NONE,
  /** 8-bit routed and shared experts, dense MLP, attention projections and LM head. */
  INT8,
  /** 4-bit routed and shared experts, dense MLP, attention projections and LM head. */
  INT4,
  /**
   * FastDeploy's WINT2 recipe: the routed experts of the first MoE layers 4-bit, those of every
   * later MoE layer 2-bit, the dense parts (attention, shared experts, dense MLP, LM head) 8-bit.
   */
  INT2_MIXED;

  /** What {@link #parse} says when it refuses a value. */
  public static final String MUST_BE = "must be none, int8, int4 or int2-mixed";

  /** The name in configuration and on the command line: none, int8, int4, int2-mixed. */
  public String configName() {
    return name().toLowerCase(Locale.ROOT).replace('_', '-');
  }

  /**
   * The mode named {@code text} (case-insensitive).
   *
   * @throws IllegalArgumentException naming the choices
   */
  public static QuantMode parse(String text) {
    for (QuantMode m : values()) {
      if (m.configName().equalsIgnoreCase(text.trim())) {
        return m;
      }
    }
    throw new IllegalArgumentException(MUST_BE + ", got '" + text + "'");
  }
}
