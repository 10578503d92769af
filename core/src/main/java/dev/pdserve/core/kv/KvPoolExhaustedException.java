package dev.pdserve.core.kv;

/** The pool has fewer free blocks than a request needs; nothing was allocated. */
public final class KvPoolExhaustedException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int needed;
  private final int free;

  public KvPoolExhaustedException(int needed, int free, int total) {
    super("KV pool exhausted: needed " + needed + " blocks, " + free + " of " + total + " free");
    this.needed = needed;
    this.free = free;
  }

  /** Blocks the request asked for. */
  public int needed() {
    return needed;
  }

  /** Blocks that were free when it asked. */
  public int free() {
    return free;
  }
}
