package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.NodeConfigLoader;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A local cluster's nodes tolerate 10 s of heartbeat silence unless the spec (or the environment)
 * says otherwise: the value the fault suite measured for many JVMs on one machine.
 */
class LocalNodeCommandTest {
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
  void aLocalClusterToleratesTenSecondsOfHeartbeatSilenceUnlessToldOtherwise() {
    String env =
        System.getenv(NodeConfigLoader.environmentVariable(LocalNodeCommand.MAX_NO_HEARTBEAT));
    LocalCluster.Spec plain = LocalCluster.Spec.of(1, 1, 1);
    List<String> cmd =
        new LocalNodeCommand(plain, "c", "127.0.0.1:1").forNode("d0", "decode", 0, 1);
    if (env == null) {
      assertTrue(
          sets(cmd).contains(LocalNodeCommand.MAX_NO_HEARTBEAT + "=10"),
          "default for local nodes: " + sets(cmd));
    } else {
      assertTrue(
          sets(cmd).stream().noneMatch(s -> s.startsWith(LocalNodeCommand.MAX_NO_HEARTBEAT)),
          "the environment's value stands: " + sets(cmd));
    }

    LocalCluster.Spec told =
        new LocalCluster.Spec(
            1,
            1,
            1,
            "tiny",
            null,
            42,
            "256m",
            "WARN",
            Map.of(LocalNodeCommand.MAX_NO_HEARTBEAT, "4"),
            "768m");
    List<String> mine =
        sets(new LocalNodeCommand(told, "c", "127.0.0.1:1").forNode("e0", "expert", 0, 1));
    assertEquals(
        List.of(LocalNodeCommand.MAX_NO_HEARTBEAT + "=4"),
        mine.stream().filter(s -> s.startsWith(LocalNodeCommand.MAX_NO_HEARTBEAT)).toList(),
        "the spec's own value is the only one");
  }
}
