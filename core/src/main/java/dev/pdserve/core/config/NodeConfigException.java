package dev.pdserve.core.config;

import java.util.List;

/**
 * A node configuration that cannot be used. Each problem names its key, e.g. {@code
 * pdserve.grpc.port: must be 0..65535, got 70000}; all problems found are reported together.
 */
public final class NodeConfigException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final List<String> problems;

  public NodeConfigException(List<String> problems) {
    super(
        problems.size() == 1
            ? problems.get(0)
            : "invalid configuration:\n  " + String.join("\n  ", problems));
    this.problems = List.copyOf(problems);
  }

  /** One line per problem, each starting with the key. */
  public List<String> problems() {
    return problems;
  }
}
