package dev.pdserve.core.coordination;

import dev.pdserve.core.config.NodeRole;
import java.time.Duration;

/**
 * A worker's two role engines as the switch protocol sees them: each can be told to take new work
 * or not, and drained. Implemented by the worker's wiring over its prefill and decode engines.
 */
public interface RoleEngines {
  /** Lets the engine of {@code role} take new work (true) or refuse it (false). */
  void setAccepting(NodeRole role, boolean accepting);

  /**
   * Finishes (prefill) or migrates/finishes (decode) the work the engine of {@code role} holds;
   * returns when it holds none, or when {@code timeout} passes. The switcher's ticker decides the
   * bound: a report of work left that comes back before it has passed is followed by another call
   * with what is left of it.
   */
  DrainReport drain(NodeRole role, Duration timeout);
}
