package dev.pdserve.core.cluster;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.RoleCoordinator;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.RoleSwitchResult;
import dev.pdserve.core.experts.PlacementPruner;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * A worker member in its own JVM, for {@link FreezeFencingTest} and the freeze measurement: joins
 * the cluster as a coordinator candidate, keeps the node entry {@code <node id>} registered ACTIVE
 * (registering again whenever its load update is refused, as {@code RegistryPresence} does) and
 * runs a {@link RoleCoordinator} whose planner always proposes a switch, and a {@link
 * PlacementPruner} as every worker with remote experts does (on waking alone it sees every other
 * shard's entry gone, and must not publish a placement without them). It prints:
 *
 * <ul>
 *   <li>{@code READY <member uuid>} once registered;
 *   <li>{@code MEMBER <uuid>} whenever its member id changes (it rejoined as a new member);
 *   <li>{@code REGISTERED <member uuid> <epoch>} on every (re)registration;
 *   <li>{@code ACTED <term>} whenever its coordinator carried out an action (confirmed term).
 * </ul>
 *
 * <p>Arguments: cluster name, seed {@code host:port}, node id, merge interval seconds.
 */
public final class FrozenMemberMain {
  public static void main(String[] args) throws Exception {
    String nodeId = args[2];
    ClusterMember member =
        ClusterMember.start(
            NodeConfigLoader.fromMap(
                Map.of(
                    "role",
                    "decode",
                    "node.id",
                    nodeId,
                    "cluster.name",
                    args[0],
                    "cluster.members",
                    args[1],
                    "cluster.port",
                    "0",
                    "cluster.join-wait-seconds",
                    "0",
                    "cluster.merge-interval-seconds",
                    args[3],
                    "coordinator.enabled",
                    "true")));
    NodeRegistry registry = new NodeRegistry(member.hazelcast());
    RoleCoordinator[] coordinator = new RoleCoordinator[1];
    coordinator[0] =
        new RoleCoordinator(
            member.hazelcast(),
            registry,
            nodeId,
            new RoleCoordinator.Timing(
                Duration.ofMillis(250), Duration.ZERO, Ticker.systemTicker()),
            (nodes, now) ->
                Optional.of(new RoleSwitchRequest(nodeId, NodeRole.PREFILL, 0, "probe")),
            (node, req) -> {
              long term = coordinator[0].lease().map(l -> l.term()).orElse(-1L);
              say("ACTED " + term);
              return new RoleSwitchResult(
                  false, "probe only", req.nodeId(), node.role(), req.to(), 0, 0, 0, 0);
            });
    PlacementPruner.start(registry, new ExpertPlacementStore(member.hazelcast()), nodeId);
    UUID shown = member.memberId();
    register(registry, nodeId);
    say("READY " + shown);
    while (true) {
      UUID now = member.memberId();
      if (!now.equals(shown)) {
        shown = now;
        say("MEMBER " + now);
      }
      try {
        if (!registry.updateLoad(nodeId, new Load(0, 1, 10, 100, 1))) {
          register(registry, nodeId);
        }
      } catch (RuntimeException e) {
        say("REFUSED " + e.getClass().getSimpleName() + ": " + e.getMessage());
      }
      Thread.sleep(250);
    }
  }

  private static void register(NodeRegistry registry, String nodeId) {
    NodeInfo n = registry.register(NodeInfo.starting(nodeId, NodeRole.DECODE, "h:1", "", ""));
    Transition t =
        registry.compareAndSet(nodeId, n.epoch(), NodeState.STARTING, null, NodeState.ACTIVE);
    say("REGISTERED " + n.memberId() + " " + t.epoch());
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }
}
