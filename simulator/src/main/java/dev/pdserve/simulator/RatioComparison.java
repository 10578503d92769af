package dev.pdserve.simulator;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Every static P:D split of N workers against dynamic switching (starting from an even split), on
 * one workload.
 *
 * @param workload a name for the workload
 * @param runs the static runs (1P:(N-1)D first) then the dynamic run
 */
public record RatioComparison(String workload, List<SimulationReport> runs) {
  private static final ObjectMapper JSON = new ObjectMapper();

  /**
   * Runs all splits of {@code nodes} workers and dynamic switching from {@code nodes/2} prefill
   * nodes.
   */
  public static RatioComparison run(
      String workloadName, List<SimRequest> workload, SimulationConfig base, int nodes) {
    if (nodes < 2) {
      throw new IllegalArgumentException(
          "--nodes must be >= 2 (one prefill and one decode), got " + nodes);
    }
    List<SimulationReport> runs = new ArrayList<>();
    for (int p = 1; p < nodes; p++) {
      runs.add(new ClusterSimulation(base.withNodes(p, nodes - p, false), workload).run());
    }
    int start = Math.max(1, nodes / 2);
    runs.add(new ClusterSimulation(base.withNodes(start, nodes - start, true), workload).run());
    return new RatioComparison(workloadName, List.copyOf(runs));
  }

  public SimulationReport dynamic() {
    return runs.get(runs.size() - 1);
  }

  public SimulationReport bestStatic() {
    return runs.subList(0, runs.size() - 1).stream()
        .max(Comparator.comparingDouble(SimulationReport::goodput))
        .orElseThrow();
  }

  /** Dynamic goodput over the best static goodput (NaN when the best static is 0). */
  public double gain() {
    double best = bestStatic().goodput();
    return best == 0 ? Double.NaN : dynamic().goodput() / best;
  }

  public void print(PrintWriter out) {
    out.printf(Locale.ROOT, "workload %s: %d requests%n", workload, runs.get(0).requests());
    out.printf(
        Locale.ROOT,
        "%-22s %10s %8s %9s %9s %9s %9s %9s %9s %8s %7s%n",
        "cluster",
        "goodput",
        "SLO met",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "TPOT p50",
        "TPOT p90",
        "TPOT p99",
        "switches",
        "failed");
    for (SimulationReport r : runs) {
      out.printf(
          Locale.ROOT,
          "%-22s %10.4f %7.1f%% %9.0f %9.0f %9.0f %9.1f %9.1f %9.1f %8d %7d%n",
          r.label(),
          r.goodput(),
          100 * r.sloAttainment(),
          r.ttftMs()[0],
          r.ttftMs()[1],
          r.ttftMs()[2],
          r.tpotMs()[0],
          r.tpotMs()[1],
          r.tpotMs()[2],
          r.switches(),
          r.failed());
    }
    out.printf(
        Locale.ROOT,
        "best static: %s (%.4f req/s/node); dynamic: %.4f req/s/node = %.2fx the best static%n",
        bestStatic().label(),
        bestStatic().goodput(),
        dynamic().goodput(),
        gain());
    for (String s : dynamic().switchLog()) {
      out.println("  switch: " + s);
    }
    out.flush();
  }

  public ObjectNode toJson() {
    ObjectNode o = JSON.createObjectNode();
    o.put("workload", workload);
    o.put("best_static", bestStatic().label());
    o.put("dynamic_over_best_static", gain());
    ArrayNode a = o.putArray("runs");
    for (SimulationReport r : runs) {
      ObjectNode j = a.addObject();
      j.put("cluster", r.label());
      j.put("nodes", r.nodes());
      j.put("requests", r.requests());
      j.put("completed", r.completed());
      j.put("failed", r.failed());
      j.put("goodput_req_per_s_per_node", r.goodput());
      j.put("slo_attainment", r.sloAttainment());
      ObjectNode ttft = j.putObject("ttft_ms");
      ObjectNode tpot = j.putObject("tpot_ms");
      String[] q = {"p50", "p90", "p99"};
      for (int i = 0; i < 3; i++) {
        ttft.put(q[i], r.ttftMs()[i]);
        tpot.put(q[i], r.tpotMs()[i]);
      }
      j.put("switches", r.switches());
      ArrayNode log = j.putArray("switch_log");
      r.switchLog().forEach(log::add);
      j.put("end_s", r.endMs() / 1000);
    }
    return o;
  }
}
