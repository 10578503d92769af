package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The member configuration: only the configured join, nothing but the member protocol served. */
class HazelcastHardeningTest {
  private static Config config(Map<String, String> more) {
    Map<String, String> m = new HashMap<>(Map.of("role", "decode", "node.id", "d0"));
    m.putAll(more);
    return ClusterMember.hazelcastConfig(NodeConfigLoader.fromMap(m));
  }

  private static void assertHardened(Config cfg) {
    JoinConfig join = cfg.getNetworkConfig().getJoin();
    assertFalse(join.getMulticastConfig().isEnabled(), "multicast");
    assertFalse(join.getAutoDetectionConfig().isEnabled(), "auto-detection");
    assertFalse(cfg.getJetConfig().isEnabled(), "Jet");
    assertFalse(cfg.getJetConfig().isResourceUploadEnabled(), "Jet resource upload");
    assertFalse(cfg.getUserCodeDeploymentConfig().isEnabled(), "user code deployment");
    assertFalse(cfg.getNamespacesConfig().isEnabled(), "user code namespaces");
    assertFalse(cfg.getNetworkConfig().getRestApiConfig().isEnabled(), "REST API");
    assertFalse(cfg.getNetworkConfig().getMemcacheProtocolConfig().isEnabled(), "memcache");
    assertFalse(cfg.getRestConfig().isEnabled(), "REST");
    assertFalse(cfg.getManagementCenterConfig().isScriptingEnabled(), "MC scripting");
    assertFalse(cfg.getManagementCenterConfig().isConsoleEnabled(), "MC console");
    assertFalse(cfg.getManagementCenterConfig().isDataAccessEnabled(), "MC data access");
    assertEquals("false", cfg.getProperty("hazelcast.http.healthcheck.enabled"));
    assertEquals("false", cfg.getProperty("hazelcast.phone.home.enabled"));
  }

  @Test
  void tcpIpJoinListsTheMembersAndBindsTheConfiguredAddressOnly() {
    Config cfg =
        config(
            Map.of("bind.host", "127.0.0.1", "cluster.members", "127.0.0.1:5701,127.0.0.1:5702"));
    assertHardened(cfg);
    JoinConfig join = cfg.getNetworkConfig().getJoin();
    assertTrue(join.getTcpIpConfig().isEnabled());
    assertEquals(2, join.getTcpIpConfig().getMembers().size());
    assertFalse(join.getKubernetesConfig().isEnabled());
    assertEquals("127.0.0.1", cfg.getProperty("hazelcast.local.localAddress"));
    assertEquals("false", cfg.getProperty("hazelcast.socket.bind.any"));
  }

  @Test
  void aWildcardBindHostBindsTheMemberToTheAdvertisedLocalAddress() {
    Config cfg = config(Map.of("bind.host", "0.0.0.0", "advertised.host", "127.0.0.1"));
    assertHardened(cfg);
    assertEquals("127.0.0.1", cfg.getProperty("hazelcast.local.localAddress"));
    assertEquals("false", cfg.getProperty("hazelcast.socket.bind.any"));
  }

  @Test
  void kubernetesJoinUsesDnsDiscoveryOnly() {
    Config cfg =
        config(
            Map.of(
                "bind.host",
                "127.0.0.1",
                "cluster.join",
                "KUBERNETES",
                "cluster.kubernetes.service",
                "pdserve-hazelcast"));
    assertHardened(cfg);
    JoinConfig join = cfg.getNetworkConfig().getJoin();
    assertTrue(join.getKubernetesConfig().isEnabled());
    assertEquals(
        "pdserve-hazelcast.default.svc.cluster.local",
        join.getKubernetesConfig().getProperty("service-dns"));
    assertFalse(join.getTcpIpConfig().isEnabled());
  }
}
