package dev.pdserve.core.kv;

/**
 * The receiving side of KV transfers, as the decode engine sees it: a node registers the transfer
 * it expects into blocks it reserved, and may cancel it. Implemented over Arrow Flight by {@code
 * core.kv.flight.KvTransferServer}.
 */
public interface KvIntake {
  /**
   * Registers a transfer of {@code tokens} positions into {@code blocks} (allocated from the
   * receiver's pool, in position order). The blocks stay the caller's: nothing here frees them.
   *
   * @throws IllegalArgumentException if the blocks cannot hold the positions
   * @throws IllegalStateException if the id was used before or the receiver is closed
   */
  ExpectedKv expect(String transferId, int[] blocks, int tokens);

  /**
   * Cancels an expected transfer: its completion fails, and once this returns nothing writes into
   * its blocks again, so the caller may free them. False if it was not pending.
   */
  boolean cancel(String transferId);
}
