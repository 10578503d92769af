package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

class SimulateCommandTest {
  private record Result(int code, String out, String err) {}

  private static Result run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new Result(code, out.toString(), err.toString());
  }

  @Test
  void simulateReportsEveryStaticSplitAndDynamicAsJson() throws Exception {
    Result r = run("simulate", "--nodes", "4", "--phase-seconds", "30", "--json");
    assertEquals(0, r.code(), r.err());
    JsonNode j = GenerateCommand.JSON.readTree(r.out());
    JsonNode runs = j.get("workloads").get(0).get("runs");
    assertEquals(4, runs.size(), "1P:3D, 2P:2D, 3P:1D and dynamic");
    assertEquals("static 1P:3D", runs.get(0).get("cluster").asText());
    assertEquals("dynamic from 2P:2D", runs.get(3).get("cluster").asText());
    for (JsonNode run : runs) {
      assertEquals(
          run.get("requests").asInt(), run.get("completed").asInt() + run.get("failed").asInt());
      assertTrue(run.get("ttft_ms").has("p99") && run.get("tpot_ms").has("p50"), run.toString());
    }
    assertTrue(j.get("workloads").get(0).has("dynamic_over_best_static"));
  }

  @Test
  void simulatePrintsATableAndExplainsBadInput() {
    Result r = run("simulate", "--nodes", "3", "--phase-seconds", "10");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("best static:") && r.out().contains("static 2P:1D"), r.out());

    Result noTrace = run("simulate", "--workload", "trace");
    assertEquals(CliErrors.USAGE, noTrace.code());
    assertTrue(noTrace.err().contains("--workload trace needs --trace FILE"), noTrace.err());
    Result one = run("simulate", "--nodes", "1");
    assertEquals(CliErrors.USAGE, one.code());
    assertTrue(one.err().contains("--nodes must be >= 2"), one.err());
  }
}
