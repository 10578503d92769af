package dev.pdserve.core.config;

/**
 * How members decide that another member is gone, and how a cut-off member comes back.
 *
 * @param detector Hazelcast's heartbeat failure detector
 * @param phiThreshold phi-accrual: the suspicion level at which a member is removed (Hazelcast's
 *     default is 10); higher tolerates more jitter in heartbeat arrival
 * @param mergeIntervalSeconds how often the master of each side looks for the other side of a split
 *     (or a member that woke from a freeze alone) to merge with
 * @param quorumWindowSeconds the coordinator lease's split-brain protection counts a majority of
 *     the largest cluster seen within this window
 */
public record FailureDetection(
    Detector detector, double phiThreshold, int mergeIntervalSeconds, int quorumWindowSeconds) {

  /** Hazelcast's heartbeat failure detectors. */
  public enum Detector {
    /** A member silent for max-no-heartbeat-seconds is removed. */
    DEADLINE,
    /**
     * Suspicion grows with the silence measured against the heartbeat intervals seen recently
     * (their mean and spread), with max-no-heartbeat-seconds as the tolerated pause.
     */
    PHI_ACCRUAL;

    /** Hazelcast's name of the detector ({@code hazelcast.heartbeat.failuredetector.type}). */
    public String hazelcastName() {
      return this == DEADLINE ? "deadline" : "phi-accrual";
    }
  }

  public static final FailureDetection DEFAULTS =
      new FailureDetection(Detector.PHI_ACCRUAL, 10, 5, 60);
}
