package dev.pdserve.model.weights;

import java.util.List;

/**
 * Weights that cannot be used: a checkpoint file that is missing or corrupt, or tensors that do not
 * match the model config. The message names the file or tensor; {@link #problems()} lists each
 * problem separately when there were several.
 */
public final class WeightException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final List<String> problems;

  public WeightException(String message) {
    this(message, List.of(message), null);
  }

  public WeightException(String message, Throwable cause) {
    this(message, List.of(message), cause);
  }

  public WeightException(String message, List<String> problems) {
    this(message, problems, null);
  }

  private WeightException(String message, List<String> problems, Throwable cause) {
    super(message, cause);
    this.problems = List.copyOf(problems);
  }

  /** Every problem found, one line each (the message shows at most the first ~20). */
  public List<String> problems() {
    return problems;
  }
}
