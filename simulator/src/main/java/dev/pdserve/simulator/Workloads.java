package dev.pdserve.simulator;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/** Workloads for the simulator: a synthetic shifting mix and replay of a request trace. */
public final class Workloads {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Workloads() {}

  /**
   * One phase of the shifting workload: Poisson arrivals at {@code ratePerSecond}, lengths uniform
   * within ±25 % of the means.
   */
  public record Phase(
      String name,
      double seconds,
      double ratePerSecond,
      int meanInputTokens,
      int meanOutputTokens) {
    public Phase {
      if (!(seconds > 0) || !(ratePerSecond > 0) || meanInputTokens < 1 || meanOutputTokens < 1) {
        throw new IllegalArgumentException(
            "phase "
                + name
                + ": seconds, rate and mean lengths must be > 0, got "
                + seconds
                + " s, "
                + ratePerSecond
                + "/s, "
                + meanInputTokens
                + "/"
                + meanOutputTokens
                + " tokens");
      }
    }
  }

  /**
   * The shift DESIGN §7's issue asks about: long prompts with short answers, then short prompts
   * with long answers, then back. Rates scale with {@code nodes} (figures per node for the built-in
   * H200 profile, where either phase alone needs about a 6:2 split of 8 nodes).
   */
  public static List<Phase> shiftingPhases(int nodes, double phaseSeconds, double load) {
    double perNode = nodes / 8.0 * load;
    Phase longPrompt = new Phase("long-prompt", phaseSeconds, 12 * perNode, 8192, 64);
    Phase longOutput = new Phase("long-output", phaseSeconds, 20 * perNode, 256, 1024);
    return List.of(longPrompt, longOutput, longPrompt);
  }

  /** Generates the requests of consecutive phases from a seed. */
  public static List<SimRequest> phases(List<Phase> phases, long seed) {
    SplittableRandom r = new SplittableRandom(seed);
    List<SimRequest> out = new ArrayList<>();
    double start = 0;
    for (Phase p : phases) {
      double end = start + p.seconds() * 1000;
      double t = start;
      while (true) {
        t += -Math.log(1 - r.nextDouble()) / p.ratePerSecond() * 1000;
        if (t >= end) {
          break;
        }
        out.add(
            new SimRequest(
                out.size(), t, jitter(r, p.meanInputTokens()), jitter(r, p.meanOutputTokens())));
      }
      start = end;
    }
    return out;
  }

  private static int jitter(SplittableRandom r, int mean) {
    return Math.max(1, (int) Math.round(mean * (0.75 + 0.5 * r.nextDouble())));
  }

  /**
   * Reads a JSONL trace ({@code timestamp} ms, {@code input_length}, {@code output_length}; other
   * fields ignored), e.g. the Mooncake conversation trace. {@code speedup} divides the timestamps
   * (2 = twice the request rate); {@code startSeconds} and {@code limit} pick a window.
   */
  public static List<SimRequest> trace(Path file, double speedup, double startSeconds, int limit)
      throws IOException {
    if (!(speedup > 0)) {
      throw new IllegalArgumentException("trace speed-up must be > 0, got " + speedup);
    }
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("trace " + file + ": no such file");
    }
    List<SimRequest> out = new ArrayList<>();
    double first = Double.NaN;
    int lineNo = 0;
    try (BufferedReader in = Files.newBufferedReader(file)) {
      for (String line = in.readLine();
          line != null && (limit <= 0 || out.size() < limit);
          line = in.readLine()) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        JsonNode n;
        try {
          n = JSON.readTree(line);
        } catch (JsonProcessingException e) {
          throw new IllegalArgumentException(
              "trace " + file + " line " + lineNo + ": not JSON: " + e.getOriginalMessage(), e);
        }
        JsonNode ts = n.get("timestamp");
        JsonNode in1 = n.get("input_length");
        JsonNode out1 = n.get("output_length");
        if (ts == null
            || in1 == null
            || out1 == null
            || !ts.isNumber()
            || !in1.isIntegralNumber()
            || !out1.isIntegralNumber()) {
          throw new IllegalArgumentException(
              "trace "
                  + file
                  + " line "
                  + lineNo
                  + ": needs numeric timestamp, input_length and output_length");
        }
        double t = ts.asDouble();
        if (t < startSeconds * 1000) {
          continue;
        }
        if (Double.isNaN(first)) {
          first = t;
        }
        out.add(
            new SimRequest(
                out.size(),
                (t - first) / speedup,
                Math.max(1, in1.asInt()),
                Math.max(1, out1.asInt())));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("trace " + file + ": no requests in the chosen window");
    }
    return out;
  }
}
