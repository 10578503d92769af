package dev.pdserve.router;

import dev.pdserve.core.cluster.NodeInfo;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One request's output as its client received it, over every decode stream the request had: the
 * token ids in order (a token's index is its de-duplication key, and the ids are what a request
 * that lost its decode node resumes from), which stream is the current one (events of any other —
 * ended, or abandoned as silent — are ignored), when that stream was last heard from, and the
 * decode nodes the request lost.
 *
 * <p>Callers that check the current stream and then act on it (deliver a delta, abandon the stream)
 * hold this object's lock across both, so a stream that is given up delivers nothing afterwards.
 */
final class DeliveredTokens {
  /** A decode node the request lost, and how. */
  record Loss(String nodeId, String what) {}

  private int[] ids = new int[16];
  private int count;
  private long streamsOpened;
  private long current; // number of the open stream; 0: none
  private NodeInfo currentNode;
  private long lastHeardNanos;
  private final List<Loss> losses = new ArrayList<>();

  /** A stream on {@code node} opens at {@code now} and becomes the current one; its number. */
  synchronized long open(NodeInfo node, long now) {
    current = ++streamsOpened;
    currentNode = node;
    lastHeardNanos = now;
    return current;
  }

  /** Whether {@code stream} is the current stream. */
  synchronized boolean isCurrent(long stream) {
    return stream != 0 && stream == current;
  }

  /**
   * Ends {@code stream} (its completion, error or migration arrived, or it is given up): true if it
   * was the current one, and then no stream is current.
   */
  synchronized boolean end(long stream) {
    if (!isCurrent(stream)) {
      return false;
    }
    current = 0;
    currentNode = null;
    return true;
  }

  /** The current stream's number, 0 when none is open. */
  synchronized long current() {
    return current;
  }

  /** The node of the current stream, null when none is open. */
  synchronized NodeInfo currentNode() {
    return currentNode;
  }

  /** The current stream sent something at {@code now}. */
  synchronized void heard(long now) {
    lastHeardNanos = now;
  }

  /** Nanoseconds since the current stream was opened or last sent something. */
  synchronized long silentFor(long now) {
    return now - lastHeardNanos;
  }

  /** Tokens received after the ones before (their indexes follow on). */
  synchronized void append(int[] more) {
    if (count + more.length > ids.length) {
      ids = Arrays.copyOf(ids, Math.max(ids.length * 2, count + more.length));
    }
    System.arraycopy(more, 0, ids, count, more.length);
    count += more.length;
  }

  /** Tokens the client received. */
  synchronized int count() {
    return count;
  }

  /** The ids of the tokens the client received, in order. */
  synchronized int[] ids() {
    return Arrays.copyOf(ids, count);
  }

  /** Records that the request lost decode node {@code nodeId} ({@code what} happened). */
  synchronized void lost(String nodeId, String what) {
    losses.add(new Loss(nodeId, what));
  }

  synchronized List<Loss> losses() {
    return List.copyOf(losses);
  }

  /** The decode nodes the request lost (it is not continued on them). */
  synchronized List<String> lostNodeIds() {
    return losses.stream().map(Loss::nodeId).distinct().toList();
  }

  /** {@code d0 (what); d1 (what)}: the losses, for error messages. */
  synchronized String describeLosses() {
    List<String> parts = new ArrayList<>();
    for (Loss l : losses) {
      parts.add(l.nodeId() + " (" + l.what() + ")");
    }
    return String.join("; ", parts);
  }
}
