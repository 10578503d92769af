package dev.pdserve.simulator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.engine.ModelSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CostModelAndWorkloadsTest {
  @TempDir Path dir;

  @Test
  void costFileOverridesTheNamedKeysAndKeepsTheRest() throws IOException {
    Path json = dir.resolve("cost.json");
    Files.writeString(json, "{\"decodeBaseMs\": 20, \"decodeMaxBatch\": 64}");
    CostModel c = CostModel.load(json);
    assertEquals(20, c.decodeBaseMs());
    assertEquals(64, c.decodeMaxBatch());
    assertEquals(CostModel.h200Ernie28b().prefillPerTokenMs(), c.prefillPerTokenMs());
    assertEquals("cost.json", c.name());

    Path props = dir.resolve("cost.properties");
    Files.writeString(props, "name = my GPU\nswitchMs = 500\n");
    CostModel p = CostModel.load(props);
    assertEquals(500, p.switchMs());
    assertEquals("my GPU", p.name());
    assertEquals(
        c.with(Map.of("decodeBaseMs", "20", "decodeMaxBatch", "64"), "cost.json"), c, "round trip");
  }

  @Test
  void badCostFilesNameTheKey() throws IOException {
    Path unknown = dir.resolve("u.json");
    Files.writeString(unknown, "{\"decodeBase\": 20}");
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> CostModel.load(unknown));
    assertTrue(
        e.getMessage().contains("unknown cost key 'decodeBase'")
            && e.getMessage().contains("decodeBaseMs"),
        e.getMessage());
    Path bad = dir.resolve("b.properties");
    Files.writeString(bad, "decodeMaxBatch = lots\n");
    e = assertThrows(IllegalArgumentException.class, () -> CostModel.load(bad));
    assertTrue(
        e.getMessage().contains("decodeMaxBatch must be a number, got 'lots'"), e.getMessage());
    Path negative = dir.resolve("n.json");
    Files.writeString(negative, "{\"transferBytesPerSecond\": 0}");
    e = assertThrows(IllegalArgumentException.class, () -> CostModel.load(negative));
    assertTrue(
        e.getMessage().contains("transferBytesPerSecond must be a finite number > 0"),
        e.getMessage());
  }

  @Test
  void traceReplayScalesTimeAndChecksEachLine() throws IOException {
    Path t = dir.resolve("t.jsonl");
    Files.writeString(
        t,
        """
        {"timestamp": 1000, "input_length": 100, "output_length": 5, "hash_ids": [0]}
        {"timestamp": 3000, "input_length": 200, "output_length": 6, "hash_ids": [0, 1]}

        {"timestamp": 5000, "input_length": 300, "output_length": 7, "hash_ids": []}
        """);
    List<SimRequest> r = Workloads.trace(t, 2, 0, 0);
    assertEquals(
        List.of(
            new SimRequest(0, 0, 100, 5),
            new SimRequest(1, 1000, 200, 6),
            new SimRequest(2, 2000, 300, 7)),
        r);
    assertEquals(
        List.of(new SimRequest(0, 0, 200, 6)),
        Workloads.trace(t, 1, 2, 1),
        "a window from 2 s, one request");
    Files.writeString(t, "{\"timestamp\": 1000, \"input_length\": 100}\n");
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> Workloads.trace(t, 1, 0, 0));
    assertTrue(
        e.getMessage().contains("line 1: needs numeric timestamp, input_length and output_length"),
        e.getMessage());
  }

  @Test
  void theMooncakeTraceReplays(@TempDir Path tmp) throws IOException {
    Path trace = mooncakeTrace(tmp);
    List<SimRequest> r = Workloads.trace(trace, 4, 0, 400);
    assertEquals(400, r.size());
    SimulationConfig c =
        new SimulationConfig(
            3,
            1,
            true,
            SimulationConfig.policyFor(CostModel.h200Ernie28b(), 2000, 50),
            CostModel.h200Ernie28b(),
            2000,
            50,
            1,
            200,
            1000,
            600_000);
    SimulationReport rep = new ClusterSimulation(c, r).run();
    assertEquals(400, rep.completed() + rep.failed());
  }

  @Test
  void leastSquaresFitRecoversAPolynomial() {
    List<double[]> x = new ArrayList<>();
    List<Double> y = new ArrayList<>();
    for (int t = 16; t <= 1024; t *= 2) {
      x.add(new double[] {1, t, (double) t * t});
      y.add(3 + 0.5 * t + 1e-4 * t * t);
    }
    double[] b = EngineCalibration.fitNonNegative(x, y);
    assertEquals(3, b[0], 1e-6);
    assertEquals(0.5, b[1], 1e-8);
    assertEquals(1e-4, b[2], 1e-10);
  }

  @Test
  void calibrationAgainstTheTinyEngineGivesAUsableCostModel() {
    CostModel c = EngineCalibration.measure(ModelSpec.preset("tiny", 42), 1);
    assertTrue(c.name().startsWith("measured tiny"), c.name());
    assertTrue(
        c.prefillPerTokenMs() > 0 && c.decodeBaseMs() > 0 && c.prefillTokensPerSecond() > 0,
        c.toString());
  }

  /**
   * The shared Mooncake trace when it is next to the checkout, else one of the same format written
   * here (600 requests, 100 ms apart, shared 512-token prefix blocks), so the test always runs.
   */
  static Path mooncakeTrace(Path dir) throws IOException {
    Path shared =
        Path.of(
            System.getProperty("pdserve.shared", "../../shared"),
            "data/traces/mooncake-conversation.jsonl");
    if (Files.isRegularFile(shared)) {
      return shared;
    }
    StringBuilder sb = new StringBuilder();
    Random rnd = new Random(7);
    int nextBlock = 8;
    for (int i = 0; i < 600; i++) {
      int input = 1000 + rnd.nextInt(7000);
      int blocks = (input + 511) / 512;
      StringBuilder ids = new StringBuilder("0");
      for (int b = 1; b < blocks; b++) {
        ids.append(", ").append(b < 3 && i % 2 == 0 ? b : nextBlock++);
      }
      sb.append("{\"timestamp\": ")
          .append(i * 100)
          .append(", \"input_length\": ")
          .append(input)
          .append(", \"output_length\": ")
          .append(1 + rnd.nextInt(800))
          .append(", \"hash_ids\": [")
          .append(ids)
          .append("]}\n");
    }
    Path generated = dir.resolve("mooncake-format.jsonl");
    Files.writeString(generated, sb.toString());
    return generated;
  }

  @Test
  void theGpuCalibrationScriptsOutputLoadsAsACostModel() throws Exception {
    // written by `python3 scripts/gpu-calibrate/calibrate.py --dry-run` (the measured run writes
    // the same keys): coefficients by name, notes under "_calibration"
    Path sample = Path.of("..", "scripts", "gpu-calibrate", "sample-cost-model.json");
    CostModel c = CostModel.load(sample);
    assertTrue(c.name().startsWith("dry-run"), c.name());
    assertEquals(57_344, c.kvBytesPerToken(), 0.0);
    assertTrue(c.decodeBaseMs() > 0 && c.prefillPerTokenMs() > 0, c.toString());
    assertEquals(CostModel.h200Ernie28b().kvBlocksPerNode(), c.kvBlocksPerNode());
  }
}
