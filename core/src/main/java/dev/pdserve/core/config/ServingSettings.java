package dev.pdserve.core.config;

import java.util.Objects;
import java.util.Optional;

/**
 * How a node presents its model and how much memory its share of the model may take.
 *
 * @param servedModelName the name the APIs serve the model under ({@code
 *     pdserve.model.served-name}); empty = the model directory's name, or the preset's
 * @param memoryLimitBytes memory the node's share (weights, KV pool, activations) must fit in
 *     ({@code pdserve.node.memory-limit}); 0 = the machine's physical memory
 */
public record ServingSettings(Optional<String> servedModelName, long memoryLimitBytes) {
  /** No served name set, the machine's memory as the limit. */
  public static final ServingSettings DEFAULTS = new ServingSettings(Optional.empty(), 0);

  public ServingSettings {
    Objects.requireNonNull(servedModelName, "servedModelName");
    if (memoryLimitBytes < 0) {
      throw new IllegalArgumentException("memoryLimitBytes must be >= 0, got " + memoryLimitBytes);
    }
  }
}
