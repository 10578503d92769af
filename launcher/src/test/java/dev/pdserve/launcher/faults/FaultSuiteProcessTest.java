package dev.pdserve.launcher.faults;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.launcher.faults.FaultRun.Fault;
import dev.pdserve.launcher.faults.FaultRun.Kind;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bounded CI part of the fault suite (issue 14): real {@code pdserve} processes (a router, a
 * prefill and two decode workers), a fault-free run for the reference tokens, then {@code kill -9}
 * of the decode worker holding the most streams while they run. Every stream — greedy and seeded
 * sampling — ends with exactly the fault-free run's tokens, at least one was migrated because its
 * node was lost, and 15 s later no worker still holds a reserved KV block.
 */
class FaultSuiteProcessTest {
  @Test
  void killMinusNineOfADecodeWorkerLosesNothing(@TempDir Path tmp) throws Exception {
    FaultCluster.Spec spec =
        new FaultCluster.Spec(
            List.of(
                new FaultCluster.NodeDef("d0", "decode", null, false),
                new FaultCluster.NodeDef("d1", "decode", null, false),
                new FaultCluster.NodeDef("p0", "prefill", null, false),
                new FaultCluster.NodeDef("router", "router", null, false)),
            "tiny",
            7,
            "32m",
            "320m",
            Map.of("pdserve.router.max-queue-delay", "0"));
    FaultRun.Shape shape =
        new FaultRun.Shape(
            6,
            240,
            Duration.ofMillis(50),
            Duration.ofMillis(1500),
            Duration.ZERO,
            Duration.ofSeconds(15),
            Duration.ofSeconds(120));
    PrintStream log = System.err;
    try (FaultCluster cluster = new FaultCluster(spec, tmp.resolve("logs"), log)) {
      cluster.start(Duration.ofMinutes(4));
      List<int[]> reference = new ArrayList<>();
      FaultRun.Result clean =
          FaultRun.run(
              cluster, new Fault("none", Kind.NONE, "-", null), shape, null, reference, log);
      assertEquals(shape.streams(), clean.same(), "the fault-free run: " + clean);
      FaultRun.Result r =
          FaultRun.run(
              cluster,
              new Fault("decode-kill", Kind.KILL, "decode", null),
              shape,
              reference,
              null,
              log);
      log.println(r);
      assertEquals(0, r.lost(), "streams lost: " + r);
      assertEquals(0, r.tokenLost() + r.duplicated() + r.changed(), "tokens differ: " + r);
      assertEquals(shape.streams(), r.same(), r.toString());
      assertEquals(0, r.strandedBlocks(), "KV blocks stranded 15 s later: " + r);
      assertEquals(List.of(), r.liveLost(), "no other node left the registry: " + r);
      assertTrue(
          r.migrations().getOrDefault("decode_node_lost", 0.0) >= 1,
          "the kill must hit streams in flight (a migration because the node was lost): " + r);
    }
  }
}
