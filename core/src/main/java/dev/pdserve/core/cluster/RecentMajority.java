package dev.pdserve.core.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.splitbrainprotection.HeartbeatAware;
import com.hazelcast.splitbrainprotection.SplitBrainProtectionFunction;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.Deque;
import java.util.function.LongSupplier;

/**
 * Split-brain protection of the coordinator lease and the expert placement: this side of the
 * cluster may act only while it holds a strict majority of the largest member count seen within the
 * last {@code window}. A node that wakes from a freeze and finds itself alone (it has dropped every
 * member it heard nothing from while frozen) is a minority of the cluster it saw just before, so it
 * cannot take or use the coordinator lease on its side; the side that kept going (2 of 3) can. When
 * a smaller cluster is all there is for longer than the window (the others really died, or were
 * scaled away), it becomes its own majority again.
 *
 * <p>Heartbeat-aware, so Hazelcast re-evaluates it every heartbeat interval, not only on membership
 * changes. The clock is injected for tests.
 */
public final class RecentMajority implements SplitBrainProtectionFunction, HeartbeatAware {
  private record Sample(long atNanos, int size) {}

  private final long windowNanos;
  private final int minSize;
  private final LongSupplier nanos;
  private final Deque<Sample> samples = new ArrayDeque<>(); // guarded by this

  public RecentMajority(Duration window) {
    this(window, 1, System::nanoTime);
  }

  /**
   * @param minSize a side smaller than this never holds the majority, however long it stays alone
   *     ({@code pdserve.cluster.min-size})
   */
  public RecentMajority(Duration window, int minSize) {
    this(window, minSize, System::nanoTime);
  }

  public RecentMajority(Duration window, LongSupplier nanos) {
    this(window, 1, nanos);
  }

  public RecentMajority(Duration window, int minSize, LongSupplier nanos) {
    this.windowNanos = window.toNanos();
    this.minSize = Math.max(1, minSize);
    this.nanos = nanos;
  }

  @Override
  public boolean apply(Collection<Member> members) {
    return observe(members.size());
  }

  /** Records {@code size} members now; whether they are a majority of the recent peak. */
  public synchronized boolean observe(int size) {
    long now = nanos.getAsLong();
    while (!samples.isEmpty() && now - samples.peekFirst().atNanos() > windowNanos) {
      samples.removeFirst();
    }
    int peak = size;
    for (Sample s : samples) {
      peak = Math.max(peak, s.size());
    }
    // Keep one sample per size change, plus a refresh at least once per window.
    Sample last = samples.peekLast();
    if (last == null || last.size() != size || now - last.atNanos() > windowNanos / 2) {
      samples.addLast(new Sample(now, size));
    }
    return size >= minSize && 2 * size > peak;
  }

  @Override
  public void onHeartbeat(Member member, long timestamp) {
    // only here to be re-evaluated every heartbeat interval
  }
}
