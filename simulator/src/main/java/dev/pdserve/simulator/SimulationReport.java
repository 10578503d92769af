package dev.pdserve.simulator;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * What one simulated run measured.
 *
 * @param label e.g. {@code static 6P:2D} or {@code dynamic from 4P:4D}
 * @param nodes workers in the cluster
 * @param requests requests in the workload
 * @param completed requests that finished
 * @param failed requests that could not be served (too long for a decode node's KV, or unfinished
 *     at the end of the drain limit); completed + failed = requests
 * @param goodput requests meeting both SLOs per second (of the workload's span) per node
 * @param sloAttainment fraction of all requests meeting both SLOs
 * @param ttftMs TTFT p50, p90, p99 of completed requests
 * @param tpotMs TPOT p50, p90, p99 of completed requests
 * @param switches role switches started
 * @param switchLog one line per switch: decision time, node, roles, when it was ACTIVE again
 * @param prefillJobsPerNode prefill jobs each node ran (routing spread)
 * @param decodeSequencesPerNode sequences each node decoded
 * @param endMs simulated time at the end
 */
public record SimulationReport(
    String label,
    int nodes,
    int requests,
    int completed,
    int failed,
    double goodput,
    double sloAttainment,
    double[] ttftMs,
    double[] tpotMs,
    int switches,
    List<String> switchLog,
    Map<String, Long> prefillJobsPerNode,
    Map<String, Long> decodeSequencesPerNode,
    double endMs) {

  /** Equality on the printed figures (records compare arrays by identity). */
  public String fingerprint() {
    return label
        + "|"
        + completed
        + "|"
        + failed
        + "|"
        + goodput
        + "|"
        + Arrays.toString(ttftMs)
        + "|"
        + Arrays.toString(tpotMs)
        + "|"
        + switchLog
        + "|"
        + prefillJobsPerNode
        + "|"
        + decodeSequencesPerNode
        + "|"
        + endMs;
  }
}
