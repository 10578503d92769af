package dev.pdserve.core.experts;

import com.google.common.base.Ticker;
import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Expert shards whose last call failed as unreachable (UNAVAILABLE: the process died, its port
 * refuses connections): skipped by every call for a hold time, so a dead replica costs one failed
 * call rather than a failed attempt per layer, and a lost shard without a replica fails its
 * experts' calls at once instead of being dialled every layer. After the hold the next call tries
 * it again; a shard that comes back at another address (restarted) is tried at once. Time is read
 * from the ticker given. Thread-safe.
 */
final class ShardHealth {
  /** Why a shard is skipped: its address when it failed, the failure, and when. */
  record Down(String address, String why, long atNanos) {}

  private final Ticker ticker;
  private final long holdNanos;
  private final ConcurrentHashMap<String, Down> down = new ConcurrentHashMap<>();

  ShardHealth(Ticker ticker, Duration hold) {
    this.ticker = ticker;
    this.holdNanos = hold.toNanos();
  }

  /** Shard {@code shardId} at {@code address} could not be reached: {@code why}. */
  void failed(String shardId, String address, String why) {
    if (holdNanos > 0) {
      down.put(shardId, new Down(address, why, ticker.read()));
    }
  }

  /**
   * Why calls skip {@code shardId} at {@code address} now (e.g. {@code failed 1.2 s ago:
   * UNAVAILABLE: ...}), or null when it is to be tried.
   */
  String whyDown(String shardId, String address) {
    Down d = down.get(shardId);
    if (d == null) {
      return null;
    }
    long age = ticker.read() - d.atNanos();
    if (!d.address().equals(address) || age >= holdNanos) {
      down.remove(shardId, d);
      return null;
    }
    return String.format("failed %.1f s ago: %s", age / 1e9, d.why());
  }

  /** Forgets what is known of {@code shardId} (it was placed anew). */
  void forget(String shardId) {
    down.remove(shardId);
  }
}
