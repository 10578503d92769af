package dev.pdserve.core.cluster;

import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.model.config.ModelPresets;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * A pdserve member in its own JVM, for {@link CrossProcessTest}: joins the given cluster, registers
 * {@code remote-0..15} as ACTIVE decode nodes with known load figures, publishes an expert
 * placement (version 1), prints {@code READY <member uuid>}, and leaves when stdin closes.
 *
 * <p>Arguments: cluster name, seed {@code host:port}.
 */
public final class RemoteMemberMain {
  static final int NODES = 16;

  static Load loadOf(int i) {
    return new Load(1000L + i, i, 100 + i, 4096, 12.5 + i);
  }

  static ExpertPlacement placement() {
    return ExpertPlacement.fromShardRanges(
            ModelPresets.get("tiny"),
            Map.of("shard-a", new ExpertRange(0, 40), "shard-b", new ExpertRange(24, 63)))
        .withVersion(1);
  }

  public static void main(String[] args) throws Exception {
    ClusterMember member =
        ClusterMember.start(
            NodeConfigLoader.fromMap(
                Map.of(
                    "role", "decode",
                    "node.id", "remote",
                    "cluster.name", args[0],
                    "cluster.members", args[1],
                    "cluster.port", "0",
                    "cluster.join-wait-seconds", "0")));
    NodeRegistry registry = new NodeRegistry(member.hazelcast());
    for (int i = 0; i < NODES; i++) {
      NodeInfo n =
          registry.register(
              NodeInfo.starting(
                  "remote-" + i, NodeRole.DECODE, "127.0.0.1:" + (20000 + i), "", ""));
      registry.compareAndSet(n.id(), n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
      registry.updateLoad(n.id(), loadOf(i));
    }
    if (!new ExpertPlacementStore(member.hazelcast()).publish(placement())) {
      throw new IllegalStateException("placement version 1 already taken");
    }
    System.out.println("READY " + member.memberId());
    System.out.flush();
    try (BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      while (in.readLine() != null) {
        // wait for EOF
      }
    }
    registry.close();
    member.close();
  }
}
