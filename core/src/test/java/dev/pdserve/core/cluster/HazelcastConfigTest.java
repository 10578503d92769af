package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.splitbrainprotection.SplitBrainProtectionOn;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.coordination.CoordinatorLeaseStore;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** How a NodeConfig maps onto Hazelcast's Config (one test starts a member). */
class HazelcastConfigTest {
  private static Config config(String... kv) {
    Map<String, String> m = new HashMap<>(Map.of("role", "decode", "node.id", "n1"));
    for (int i = 0; i < kv.length; i += 2) {
      m.put(kv[i], kv[i + 1]);
    }
    return ClusterMember.hazelcastConfig(NodeConfigLoader.fromMap(m));
  }

  @Test
  void tcpIpListsEverySeedAndNothingElseJoins() {
    Config c = config("cluster.members", "10.0.0.1:5701,10.0.0.2:5701");
    JoinConfig join = c.getNetworkConfig().getJoin();
    assertTrue(join.getTcpIpConfig().isEnabled());
    assertEquals(List.of("10.0.0.1:5701", "10.0.0.2:5701"), join.getTcpIpConfig().getMembers());
    assertFalse(join.getMulticastConfig().isEnabled());
    assertFalse(join.getKubernetesConfig().isEnabled());
    assertFalse(join.getAutoDetectionConfig().isEnabled());
    assertEquals("pdserve", c.getClusterName());
    assertEquals("pdserve-n1", c.getInstanceName());
    assertEquals("log4j2", c.getProperty("hazelcast.logging.type"));
    assertEquals("false", c.getProperty("hazelcast.shutdownhook.enabled"));
    assertEquals(
        "127.0.0.1", c.getProperty("hazelcast.local.localAddress"), "bound to loopback by default");
    assertEquals("false", c.getProperty("hazelcast.socket.bind.any"));
  }

  @Test
  void kubernetesUsesDnsLookupOfTheHeadlessService() {
    Config c =
        config(
            "cluster.join",
            "kubernetes",
            "cluster.kubernetes.service",
            "pdserve-hz",
            "cluster.kubernetes.namespace",
            "llm");
    JoinConfig join = c.getNetworkConfig().getJoin();
    assertTrue(join.getKubernetesConfig().isEnabled());
    assertEquals(
        "pdserve-hz.llm.svc.cluster.local", join.getKubernetesConfig().getProperty("service-dns"));
    assertEquals("5701", join.getKubernetesConfig().getProperty("service-port"));
    assertFalse(join.getTcpIpConfig().isEnabled());
    assertFalse(join.getMulticastConfig().isEnabled());
  }

  @Test
  void noneJoinsNobody() {
    JoinConfig join = config("cluster.join", "none").getNetworkConfig().getJoin();
    assertFalse(
        join.getTcpIpConfig().isEnabled()
            || join.getMulticastConfig().isEnabled()
            || join.getKubernetesConfig().isEnabled());
  }

  @Test
  void minSizeTurnsOnSplitBrainProtectionForTheRegistryMaps() {
    Config c = config("cluster.min-size", "2");
    assertEquals(
        2,
        c.getSplitBrainProtectionConfig(ClusterMember.SPLIT_BRAIN_PROTECTION)
            .getMinimumClusterSize());
    assertEquals(
        ClusterMember.SPLIT_BRAIN_PROTECTION,
        c.getMapConfig(NodeRegistry.MAP_NAME).getSplitBrainProtectionName());
    for (String map : List.of(NodeRegistry.MAP_NAME, ExpertPlacementStore.MAP_NAME)) {
      assertEquals(
          RegistryMergePolicy.class.getName(),
          c.getMapConfig(map).getMergePolicyConfig().getPolicy());
    }
    var placement = c.getSplitBrainProtectionConfig(ClusterMember.PLACEMENT_PROTECTION);
    assertEquals(SplitBrainProtectionOn.READ_WRITE, placement.getProtectOn());
    RecentMajority rule = (RecentMajority) placement.getFunctionImplementation();
    assertFalse(rule.observe(1), "one member is below min-size 2 even when it is all there is");
    assertTrue(rule.observe(2));
  }

  @Test
  void theExpertPlacementIsWrittenOnlyByARecentMajority() {
    Config c = config();
    assertEquals(
        ClusterMember.PLACEMENT_PROTECTION,
        c.getMapConfig(ExpertPlacementStore.MAP_NAME).getSplitBrainProtectionName());
    assertNull(
        c.getMapConfig(NodeRegistry.MAP_NAME).getSplitBrainProtectionName(),
        "the registry is unprotected without min-size (the merge policy reconciles it)");
    var placement = c.getSplitBrainProtectionConfig(ClusterMember.PLACEMENT_PROTECTION);
    assertEquals(SplitBrainProtectionOn.WRITE, placement.getProtectOn());
    RecentMajority rule = (RecentMajority) placement.getFunctionImplementation();
    assertTrue(rule.observe(5));
    assertFalse(rule.observe(1), "one of the five just seen is a minority: it may not write");
    assertTrue(rule.observe(3), "three of five may");
  }

  @Test
  void failureDetectionMergeAndTheCoordinatorLeaseQuorumAreConfigured() {
    Config c = config();
    assertEquals("phi-accrual", c.getProperty("hazelcast.heartbeat.failuredetector.type"));
    assertEquals("10.0", c.getProperty("hazelcast.heartbeat.phiaccrual.failuredetector.threshold"));
    assertEquals("5", c.getProperty("hazelcast.max.no.heartbeat.seconds"));
    assertEquals("5", c.getProperty("hazelcast.merge.next.run.delay.seconds"));
    var lease = c.getMapConfig(CoordinatorLeaseStore.MAP_NAME);
    assertEquals(ClusterMember.LEASE_PROTECTION, lease.getSplitBrainProtectionName());
    assertEquals(RegistryMergePolicy.class.getName(), lease.getMergePolicyConfig().getPolicy());
    var protection = c.getSplitBrainProtectionConfig(ClusterMember.LEASE_PROTECTION);
    assertEquals(SplitBrainProtectionOn.WRITE, protection.getProtectOn());
    assertTrue(protection.getFunctionImplementation() instanceof RecentMajority);
    Config deadline =
        config("cluster.failure-detector", "deadline", "cluster.merge-interval-seconds", "3");
    assertEquals("deadline", deadline.getProperty("hazelcast.heartbeat.failuredetector.type"));
    assertEquals("3", deadline.getProperty("hazelcast.merge.first.run.delay.seconds"));
  }

  @Test
  void everyPeerGetsItsOwnOutputThreadUpToTheSetting() {
    assertEquals("16", config().getProperty("hazelcast.io.output.thread.count"));
    assertEquals(
        "4", config("cluster.output-threads", "4").getProperty("hazelcast.io.output.thread.count"));
  }

  @Test
  void wildcardBindAdvertisesThePublicAddress() {
    Config c =
        config(
            "bind.host", "0.0.0.0", "advertised.host", "10.1.2.3", "cluster.lite-member", "true");
    assertFalse(c.getNetworkConfig().getInterfaces().isEnabled());
    assertEquals("10.1.2.3", c.getNetworkConfig().getPublicAddress());
    assertTrue(c.isLiteMember());
  }

  @Test
  void aMemberBindsALoopbackAddressThatIsNoInterfacesOwn() {
    // All of 127/8 is loopback, but only 127.0.0.1 is an interface's address: the member must bind
    // the configured address itself (how tests give every simulated pod its own IP).
    Map<String, String> m =
        Map.of(
            "role",
            "decode",
            "node.id",
            "loopback-7",
            "bind.host",
            "127.0.0.7",
            "cluster.join",
            "none",
            "cluster.port",
            "0");
    try (ClusterMember member = ClusterMember.start(NodeConfigLoader.fromMap(m))) {
      assertEquals("127.0.0.7", member.hazelcastAddress().host());
      assertEquals(1, member.clusterSize());
    }
  }
}
