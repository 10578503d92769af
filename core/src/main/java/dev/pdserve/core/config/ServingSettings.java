package dev.pdserve.core.config;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * How a node presents its model and how much memory its share of the model may take.
 *
 * @param servedModelName the name the APIs serve the model under ({@code
 *     pdserve.model.served-name}); empty = the model directory's name, or the preset's
 * @param memoryLimitBytes memory the node's share (weights, KV pool, activations) must fit in
 *     ({@code pdserve.node.memory-limit}); 0 = the machine's physical memory
 * @param kvTransferTimeout how long one KV handoff may take, from the prefill node opening the push
 *     (when the prefill starts: the KV streams out as it is computed) to the decode node's
 *     acknowledgement; the decode node waits as long for a joined request's KV ({@code
 *     pdserve.kv.transfer-timeout})
 */
public record ServingSettings(
    Optional<String> servedModelName, long memoryLimitBytes, Duration kvTransferTimeout) {
  /** A KV handoff's bound unless configured: 60 s. */
  public static final Duration DEFAULT_KV_TRANSFER_TIMEOUT = Duration.ofSeconds(60);

  /** No served name set, the machine's memory as the limit. */
  public static final ServingSettings DEFAULTS =
      new ServingSettings(Optional.empty(), 0, DEFAULT_KV_TRANSFER_TIMEOUT);

  public ServingSettings {
    Objects.requireNonNull(servedModelName, "servedModelName");
    if (kvTransferTimeout == null || kvTransferTimeout.isNegative() || kvTransferTimeout.isZero()) {
      throw new IllegalArgumentException("kvTransferTimeout must be > 0, got " + kvTransferTimeout);
    }
    if (memoryLimitBytes < 0) {
      throw new IllegalArgumentException("memoryLimitBytes must be >= 0, got " + memoryLimitBytes);
    }
  }
}
