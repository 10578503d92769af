package dev.pdserve.core.coordination;

/**
 * Tuning of the role-switch policy ({@link SwitchPolicy}). Times are milliseconds; pressures are
 * dimensionless, 1.0 meaning "at the SLO target".
 *
 * <p>Prefill pressure = estimated queueing delay of the prompt tokens waiting on the ACTIVE prefill
 * nodes (queued tokens / ({@code prefillTokensPerSecond} × prefill nodes)) divided by {@code
 * ttftTargetMillis}. Decode pressure = the largest of: mean decode step time / {@code
 * tpotTargetMillis}, mean running sequences / {@code decodeBatchTarget}, mean KV occupancy / {@code
 * kvOccupancyTarget}.
 *
 * @param ttftTargetMillis time-to-first-token SLO target
 * @param tpotTargetMillis time-per-output-token SLO target
 * @param prefillTokensPerSecond one prefill node's prompt throughput, used to turn queued tokens
 *     into a queueing delay
 * @param decodeBatchTarget running sequences per decode node at which it counts as full
 * @param kvOccupancyTarget KV occupancy (0..1] at which a decode node counts as full
 * @param switchThreshold the starved role's smoothed pressure must exceed this to start a switch
 * @param improvementMargin a switch must lower the larger of the two predicted pressures by at
 *     least this fraction (0..1) — the hysteresis band that stops a move from being undone at once
 * @param smoothingWindowMillis time constant of the exponential smoothing of both pressures
 * @param persistMillis the imbalance must hold continuously this long before a switch
 * @param cooldownMillis no new switch for this long after one ends (or is decided)
 * @param reverseHoldMillis no switch in the opposite direction of the previous one for this long
 * @param minNodesPerRole never leave PREFILL or DECODE with fewer ACTIVE nodes than this (≥ 1)
 */
public record CoordinatorSettings(
    double ttftTargetMillis,
    double tpotTargetMillis,
    double prefillTokensPerSecond,
    double decodeBatchTarget,
    double kvOccupancyTarget,
    double switchThreshold,
    double improvementMargin,
    long smoothingWindowMillis,
    long persistMillis,
    long cooldownMillis,
    long reverseHoldMillis,
    int minNodesPerRole) {

  public CoordinatorSettings {
    positive("ttftTargetMillis", ttftTargetMillis);
    positive("tpotTargetMillis", tpotTargetMillis);
    positive("prefillTokensPerSecond", prefillTokensPerSecond);
    positive("decodeBatchTarget", decodeBatchTarget);
    if (!(kvOccupancyTarget > 0 && kvOccupancyTarget <= 1)) {
      throw new IllegalArgumentException(
          "kvOccupancyTarget must be in (0, 1], got " + kvOccupancyTarget);
    }
    positive("switchThreshold", switchThreshold);
    if (!(improvementMargin >= 0 && improvementMargin < 1)) {
      throw new IllegalArgumentException(
          "improvementMargin must be in [0, 1), got " + improvementMargin);
    }
    notNegative("smoothingWindowMillis", smoothingWindowMillis);
    notNegative("persistMillis", persistMillis);
    notNegative("cooldownMillis", cooldownMillis);
    notNegative("reverseHoldMillis", reverseHoldMillis);
    if (minNodesPerRole < 1) {
      throw new IllegalArgumentException(
          "minNodesPerRole must be >= 1 (a role may never be left empty), got " + minNodesPerRole);
    }
  }

  /**
   * Defaults for a GPU deployment of a 28B-A3B-class model: TTFT 2 s, TPOT 100 ms, 10k prompt
   * tokens/s per prefill node, 128 sequences per decode node, KV full at 90 %.
   */
  public static CoordinatorSettings defaults() {
    return new CoordinatorSettings(
        2000, 100, 10_000, 128, 0.9, 0.7, 0.15, 2_000, 4_000, 10_000, 30_000, 1);
  }

  public CoordinatorSettings withTargets(double ttftMillis, double tpotMillis) {
    return new CoordinatorSettings(
        ttftMillis,
        tpotMillis,
        prefillTokensPerSecond,
        decodeBatchTarget,
        kvOccupancyTarget,
        switchThreshold,
        improvementMargin,
        smoothingWindowMillis,
        persistMillis,
        cooldownMillis,
        reverseHoldMillis,
        minNodesPerRole);
  }

  public CoordinatorSettings withCapacity(double prefillTokensPerSec, double decodeBatch) {
    return new CoordinatorSettings(
        ttftTargetMillis,
        tpotTargetMillis,
        prefillTokensPerSec,
        decodeBatch,
        kvOccupancyTarget,
        switchThreshold,
        improvementMargin,
        smoothingWindowMillis,
        persistMillis,
        cooldownMillis,
        reverseHoldMillis,
        minNodesPerRole);
  }

  public CoordinatorSettings withTiming(
      long smoothingWindow, long persist, long cooldown, long reverseHold) {
    return new CoordinatorSettings(
        ttftTargetMillis,
        tpotTargetMillis,
        prefillTokensPerSecond,
        decodeBatchTarget,
        kvOccupancyTarget,
        switchThreshold,
        improvementMargin,
        smoothingWindow,
        persist,
        cooldown,
        reverseHold,
        minNodesPerRole);
  }

  public CoordinatorSettings withHysteresis(double threshold, double margin) {
    return new CoordinatorSettings(
        ttftTargetMillis,
        tpotTargetMillis,
        prefillTokensPerSecond,
        decodeBatchTarget,
        kvOccupancyTarget,
        threshold,
        margin,
        smoothingWindowMillis,
        persistMillis,
        cooldownMillis,
        reverseHoldMillis,
        minNodesPerRole);
  }

  public CoordinatorSettings withMinNodesPerRole(int min) {
    return new CoordinatorSettings(
        ttftTargetMillis,
        tpotTargetMillis,
        prefillTokensPerSecond,
        decodeBatchTarget,
        kvOccupancyTarget,
        switchThreshold,
        improvementMargin,
        smoothingWindowMillis,
        persistMillis,
        cooldownMillis,
        reverseHoldMillis,
        min);
  }

  private static void positive(String key, double v) {
    if (!(v > 0) || Double.isInfinite(v)) {
      throw new IllegalArgumentException(key + " must be a finite number > 0, got " + v);
    }
  }

  private static void notNegative(String key, long v) {
    if (v < 0) {
      throw new IllegalArgumentException(key + " must be >= 0, got " + v);
    }
  }
}
