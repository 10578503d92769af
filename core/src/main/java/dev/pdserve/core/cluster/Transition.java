package dev.pdserve.core.cluster;

/**
 * The answer to {@link NodeRegistry#compareAndSet}: whether the transition was applied, and the
 * entry as it stands afterwards.
 *
 * @param outcome applied, or why not
 * @param node the entry after the attempt (the winner's entry when refused); null if there is none
 */
public record Transition(Outcome outcome, NodeInfo node) {
  public enum Outcome {
    APPLIED,
    /** The entry's epoch moved on: someone else changed it first. */
    STALE_EPOCH,
    /** The epoch matched but the state was not the expected one. */
    WRONG_STATE,
    /** No entry with that id. */
    NOT_FOUND,
    /**
     * The writer is not a member of the cluster (any more): it was given up — crashed, or frozen
     * past the heartbeat bound — and has not rejoined under a new member id.
     */
    FENCED
  }

  public boolean applied() {
    return outcome == Outcome.APPLIED;
  }

  /** The entry's epoch after the attempt (the new epoch when applied), -1 if there is no entry. */
  public long epoch() {
    return node == null ? -1 : node.epoch();
  }

  @Override
  public String toString() {
    return outcome
        + (node == null
            ? ""
            : " ("
                + node.id()
                + " epoch "
                + node.epoch()
                + " "
                + node.role()
                + "/"
                + node.state()
                + ")");
  }
}
