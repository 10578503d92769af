package dev.pdserve.simulator;

import dev.pdserve.core.coordination.CoordinatorSettings;
import dev.pdserve.core.coordination.SwitchPolicy;
import java.util.Objects;

/**
 * One simulated cluster run.
 *
 * @param prefillNodes workers starting as PREFILL
 * @param decodeNodes workers starting as DECODE
 * @param dynamic whether the coordinator's {@link SwitchPolicy} runs
 * @param policy the policy's settings (used when dynamic)
 * @param cost the node cost model
 * @param ttftSloMs a request meets its SLO when its time to first token is at most this...
 * @param tpotSloMs ...and its mean time per output token at most this
 * @param seed seeds the router's random candidate draws
 * @param publishIntervalMs how often workers publish load (the real nodes: 200 ms)
 * @param coordinatorIntervalMs how often the coordinator evaluates the policy
 * @param drainLimitMs how long after the last arrival the simulation may run; unfinished requests
 *     fail
 */
public record SimulationConfig(
    int prefillNodes,
    int decodeNodes,
    boolean dynamic,
    CoordinatorSettings policy,
    CostModel cost,
    double ttftSloMs,
    double tpotSloMs,
    long seed,
    long publishIntervalMs,
    long coordinatorIntervalMs,
    long drainLimitMs) {

  public SimulationConfig {
    Objects.requireNonNull(policy, "policy");
    Objects.requireNonNull(cost, "cost");
    if (prefillNodes < 1 || decodeNodes < 1) {
      throw new IllegalArgumentException(
          "a cluster needs at least 1 prefill and 1 decode node, got "
              + prefillNodes
              + "P:"
              + decodeNodes
              + "D");
    }
    if (!(ttftSloMs > 0) || !(tpotSloMs > 0)) {
      throw new IllegalArgumentException(
          "SLO targets must be > 0, got TTFT " + ttftSloMs + " ms, TPOT " + tpotSloMs + " ms");
    }
    if (publishIntervalMs < 1 || coordinatorIntervalMs < 1 || drainLimitMs < 0) {
      throw new IllegalArgumentException(
          "publish and coordinator intervals must be >= 1 ms and the drain limit >= 0");
    }
  }

  /**
   * Policy settings matched to a cost model and SLOs: targets = SLOs, capacities from the model.
   */
  public static CoordinatorSettings policyFor(CostModel cost, double ttftSloMs, double tpotSloMs) {
    return CoordinatorSettings.defaults()
        .withTargets(ttftSloMs, tpotSloMs)
        .withCapacity(cost.prefillTokensPerSecond(), cost.decodeMaxBatch());
  }

  public String label() {
    return (dynamic ? "dynamic from " : "static ") + prefillNodes + "P:" + decodeNodes + "D";
  }

  public SimulationConfig withNodes(int p, int d, boolean dyn) {
    return new SimulationConfig(
        p,
        d,
        dyn,
        policy,
        cost,
        ttftSloMs,
        tpotSloMs,
        seed,
        publishIntervalMs,
        coordinatorIntervalMs,
        drainLimitMs);
  }
}
