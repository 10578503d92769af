package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.coordination.CoordinatorSettings;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.simulator.CostModel;
import dev.pdserve.simulator.EngineCalibration;
import dev.pdserve.simulator.RatioComparison;
import dev.pdserve.simulator.SimRequest;
import dev.pdserve.simulator.SimulationConfig;
import dev.pdserve.simulator.Workloads;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pdserve simulate}: goodput of every static P:D split against dynamic role switching,
 * simulated.
 */
@Command(
    name = "simulate",
    mixinStandardHelpOptions = true,
    description = {
      "Simulate a cluster of N workers (the real router selection and role-switch policy over modelled nodes) and report",
      "goodput (requests meeting both the TTFT and TPOT SLOs, per second per node) for every static P:D split and for",
      "dynamic switching, with TTFT/TPOT p50/p90/p99 and the switches made."
    })
final class SimulateCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--nodes",
      defaultValue = "8",
      description = "Workers (prefill + decode). Default: ${DEFAULT-VALUE}.")
  int nodes;

  @Option(
      names = "--workload",
      defaultValue = "shift",
      description =
          "shift (long prompts, then long outputs, then back), trace, or both. Default: ${DEFAULT-VALUE}.")
  String workload;

  @Option(
      names = "--phase-seconds",
      defaultValue = "120",
      description = "Length of each phase of the shift workload. Default: ${DEFAULT-VALUE}.")
  double phaseSeconds;

  @Option(
      names = "--load",
      defaultValue = "1.0",
      description = "Scales the shift workload's request rates. Default: ${DEFAULT-VALUE}.")
  double load;

  @Option(
      names = "--trace",
      paramLabel = "FILE",
      description =
          "JSONL trace (timestamp ms, input_length, output_length), e.g. the Mooncake conversation trace.")
  Path trace;

  @Option(
      names = "--trace-speedup",
      defaultValue = "2",
      description = "Divide the trace's timestamps by this. Default: ${DEFAULT-VALUE}.")
  double traceSpeedup;

  @Option(
      names = "--trace-start-s",
      defaultValue = "0",
      description = "Skip the trace's requests before this second.")
  double traceStart;

  @Option(
      names = "--trace-limit",
      defaultValue = "0",
      description = "Replay at most this many requests (0 = all).")
  int traceLimit;

  @Option(
      names = "--cost-profile",
      defaultValue = "h200",
      description =
          "Built-in cost model (assumed figures; see docs/PERFORMANCE.md): h200. Default: ${DEFAULT-VALUE}.")
  String costProfile;

  @Option(
      names = "--cost-model",
      paramLabel = "FILE",
      description =
          "Cost coefficients as JSON or .properties (keys as in --print-cost-model); missing keys keep the h200 values.")
  Path costModel;

  @Option(
      names = "--calibrate",
      paramLabel = "PRESET",
      description =
          "Measure the real engine (e.g. tiny, small) on this machine and use the fitted costs.")
  String calibrate;

  @Option(
      names = "--print-cost-model",
      description = "Print the cost model in use as JSON and exit.")
  boolean printCost;

  @Option(
      names = "--ttft-ms",
      defaultValue = "2000",
      description = "TTFT SLO (and the policy's target). Default: ${DEFAULT-VALUE}.")
  double ttftMs;

  @Option(
      names = "--tpot-ms",
      defaultValue = "50",
      description = "TPOT SLO (and the policy's target). Default: ${DEFAULT-VALUE}.")
  double tpotMs;

  @Option(
      names = "--cooldown-ms",
      description = "Policy cool-down after a switch (default from CoordinatorSettings).")
  Long cooldownMs;

  @Option(
      names = "--persist-ms",
      description =
          "How long an imbalance must hold before a switch (default from CoordinatorSettings).")
  Long persistMs;

  @Option(
      names = "--seed",
      defaultValue = "1",
      description = "Seeds the workload and the router's draws. Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(
      names = "--drain-limit-s",
      defaultValue = "600",
      description =
          "Simulated seconds after the last arrival before unfinished requests count as failed. Default: ${DEFAULT-VALUE}.")
  long drainLimitS;

  @Option(names = "--json", description = "Print one JSON object instead of the tables.")
  boolean json;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    CostModel cost = costModel();
    if (printCost) {
      out.println(cost.toJson().toPrettyString());
      out.flush();
      return 0;
    }
    CoordinatorSettings policy = SimulationConfig.policyFor(cost, ttftMs, tpotMs);
    if (cooldownMs != null || persistMs != null) {
      policy =
          policy.withTiming(
              policy.smoothingWindowMillis(),
              persistMs != null ? persistMs : policy.persistMillis(),
              cooldownMs != null ? cooldownMs : policy.cooldownMillis(),
              policy.reverseHoldMillis());
    }
    SimulationConfig base =
        new SimulationConfig(
            1, 1, false, policy, cost, ttftMs, tpotMs, seed, 200, 1000, drainLimitS * 1000);
    List<RatioComparison> results = new ArrayList<>();
    String w = workload.toLowerCase(Locale.ROOT);
    if (!List.of("shift", "trace", "both").contains(w)) {
      throw new IllegalArgumentException(
          "--workload must be shift, trace or both, got '" + workload + "'");
    }
    if (!w.equals("trace")) {
      List<SimRequest> reqs =
          Workloads.phases(Workloads.shiftingPhases(nodes, phaseSeconds, load), seed);
      results.add(
          RatioComparison.run(
              String.format(
                  Locale.ROOT, "shift (3 phases of %.0f s, load %.2f)", phaseSeconds, load),
              reqs,
              base,
              nodes));
    }
    if (!w.equals("shift")) {
      if (trace == null) {
        throw new IllegalArgumentException(
            "--workload "
                + w
                + " needs --trace FILE (e.g. ../shared/data/traces/mooncake-conversation.jsonl)");
      }
      List<SimRequest> reqs = Workloads.trace(trace, traceSpeedup, traceStart, traceLimit);
      results.add(
          RatioComparison.run(
              String.format(Locale.ROOT, "trace %s at %.2fx", trace.getFileName(), traceSpeedup),
              reqs,
              base,
              nodes));
    }
    if (json) {
      ObjectNode o = GenerateCommand.JSON.createObjectNode();
      o.set("cost_model", cost.toJson());
      o.put("nodes", nodes);
      o.put("ttft_slo_ms", ttftMs);
      o.put("tpot_slo_ms", tpotMs);
      o.put("seed", seed);
      ArrayNode a = o.putArray("workloads");
      results.forEach(r -> a.add(r.toJson()));
      out.println(o.toPrettyString());
    } else {
      out.printf(
          Locale.ROOT,
          "pdserve simulate: %d nodes, cost model %s, SLO TTFT %.0f ms / TPOT %.0f ms, goodput in req/s/node%n",
          nodes,
          cost.name(),
          ttftMs,
          tpotMs);
      for (RatioComparison r : results) {
        out.println();
        r.print(out);
      }
    }
    out.flush();
    return 0;
  }

  private CostModel costModel() throws IOException {
    int given = (costModel != null ? 1 : 0) + (calibrate != null ? 1 : 0);
    if (given > 1) {
      throw new IllegalArgumentException("give only one of --cost-model and --calibrate");
    }
    if (costModel != null) {
      return CostModel.load(costModel);
    }
    if (calibrate != null) {
      spec.commandLine()
          .getErr()
          .println("calibrating against the " + calibrate + " engine on this machine...");
      return EngineCalibration.measure(ModelSpec.preset(calibrate, 42), 0);
    }
    return CostModel.profile(costProfile);
  }
}
