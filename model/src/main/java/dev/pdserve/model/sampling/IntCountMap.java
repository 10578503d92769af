package dev.pdserve.model.sampling;

import java.util.Arrays;

/**
 * Occurrence counts of non-negative int keys: open addressing, linear probing, no boxing. Slots are
 * exposed by index so that the sampler can walk them without allocating.
 */
final class IntCountMap {
  private static final int EMPTY = -1;

  private int[] keys;
  private int[] counts;
  private int size;

  IntCountMap(int expected) {
    int cap = Integer.highestOneBit(Math.max(8, expected * 2 - 1)) << 1;
    keys = new int[cap];
    counts = new int[cap];
    Arrays.fill(keys, EMPTY);
  }

  /** Adds one occurrence of {@code key} ({@code >= 0}). */
  void increment(int key) {
    if ((size + 1) * 2 > keys.length) {
      grow();
    }
    int slot = find(keys, key);
    if (keys[slot] == EMPTY) {
      keys[slot] = key;
      size++;
    }
    counts[slot]++;
  }

  int get(int key) {
    int slot = find(keys, key);
    return keys[slot] == EMPTY ? 0 : counts[slot];
  }

  boolean contains(int key) {
    return keys[find(keys, key)] != EMPTY;
  }

  int size() {
    return size;
  }

  int capacity() {
    return keys.length;
  }

  /** The key in {@code slot}, or -1 where the slot is empty. */
  int keyAt(int slot) {
    return keys[slot];
  }

  int countAt(int slot) {
    return counts[slot];
  }

  private static int find(int[] keys, int key) {
    int mask = keys.length - 1;
    int slot = (key * 0x9E3779B9) >>> 7 & mask;
    while (keys[slot] != EMPTY && keys[slot] != key) {
      slot = (slot + 1) & mask;
    }
    return slot;
  }

  private void grow() {
    int[] oldKeys = keys;
    int[] oldCounts = counts;
    keys = new int[oldKeys.length * 2];
    counts = new int[oldKeys.length * 2];
    Arrays.fill(keys, EMPTY);
    for (int i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] != EMPTY) {
        int slot = find(keys, oldKeys[i]);
        keys[slot] = oldKeys[i];
        counts[slot] = oldCounts[i];
      }
    }
  }
}
