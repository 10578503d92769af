package dev.pdserve.core.kv;

/**
 * Opens KV pushes to other nodes: the sending side of a KV transfer, as engines see it (the prefill
 * engine pushing a prompt's KV, a draining decode node moving a sequence). Implemented over Arrow
 * Flight by {@code core.kv.flight.KvTransferClient}.
 */
@FunctionalInterface
public interface KvPusher {
  /**
   * Starts pushing transfer {@code transferId} to {@code target}, which must expect it ({@link
   * KvIntake#expect}); otherwise the first send or {@link KvPush#complete()} fails.
   *
   * @throws RuntimeException when the target cannot be reached at all
   */
  KvPush open(KvEndpoint target, String transferId);
}
