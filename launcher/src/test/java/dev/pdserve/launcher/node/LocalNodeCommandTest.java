package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A local cluster's node command carries the spec's own settings, each once, and adds no heartbeat
 * setting of its own: local nodes use the global 5 s tolerance (docs/RELIABILITY.md "Runs of 7-8
 * December").
 */
class LocalNodeCommandTest {
  private static final String MAX_NO_HEARTBEAT = "pdserve.cluster.max-no-heartbeat-seconds";

  private static List<String> sets(List<String> cmd) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i + 1 < cmd.size(); i++) {
      if (cmd.get(i).equals("--set")) {
        out.add(cmd.get(i + 1));
      }
    }
    return out;
  }

  @Test
  void theSpecsSettingsReachEveryNodeAndNoHeartbeatToleranceIsAdded() {
    List<String> plain =
        sets(
            new LocalNodeCommand(LocalCluster.Spec.of(1, 1, 1), "c", "127.0.0.1:1")
                .forNode("d0", "decode", 0, 1));
    assertTrue(
        plain.stream().noneMatch(s -> s.startsWith(MAX_NO_HEARTBEAT)),
        "the global default stands: " + plain);

    LocalCluster.Spec told =
        new LocalCluster.Spec(
            1, 1, 1, "tiny", null, 42, "256m", "WARN", Map.of(MAX_NO_HEARTBEAT, "4"), "768m");
    List<String> mine =
        sets(new LocalNodeCommand(told, "c", "127.0.0.1:1").forNode("e0", "expert", 0, 1));
    assertEquals(
        List.of(MAX_NO_HEARTBEAT + "=4"),
        mine.stream().filter(s -> s.startsWith(MAX_NO_HEARTBEAT)).toList(),
        "the spec's own value, once");
  }
}
