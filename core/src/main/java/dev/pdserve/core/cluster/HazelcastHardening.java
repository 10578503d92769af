package dev.pdserve.core.cluster;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import dev.pdserve.core.config.NodeConfig;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;

/**
 * What a pdserve Hazelcast member turns off, since the open-source edition has no TLS, no
 * authentication between members and no socket interceptor (docs/DEPLOY.md): no multicast or
 * auto-detection join (only the configured member list or Kubernetes DNS), Jet and its resource
 * upload off, user code deployment and namespaces off, the REST, memcache and new REST endpoints
 * off, Management Center scripting, console and data access off, the HTTP health check off; the
 * member binds to the configured interface only — for a wildcard bind host, to the advertised
 * address when that is one of this host's (the pod IP), so the member port is never on every
 * interface.
 */
public final class HazelcastHardening {
  private HazelcastHardening() {}

  /** Applies the settings above to {@code cfg}, the member config of {@code node}. */
  public static Config apply(Config cfg, NodeConfig node) {
    NetworkConfig net = cfg.getNetworkConfig();
    JoinConfig join = net.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    cfg.getJetConfig().setEnabled(false).setResourceUploadEnabled(false);
    cfg.getUserCodeDeploymentConfig().setEnabled(false);
    cfg.getNamespacesConfig().setEnabled(false);
    net.getRestApiConfig().setEnabled(false);
    net.getMemcacheProtocolConfig().setEnabled(false);
    cfg.getRestConfig().setEnabled(false);
    cfg.getManagementCenterConfig()
        .setScriptingEnabled(false)
        .setConsoleEnabled(false)
        .setDataAccessEnabled(false);
    cfg.setProperty("hazelcast.http.healthcheck.enabled", "false");
    cfg.setProperty("hazelcast.phone.home.enabled", "false");
    InetAddress bind = address(node.network().bindHost());
    if (bind != null && bind.isAnyLocalAddress()) {
      InetAddress advertised = address(node.network().advertisedHost());
      if (advertised != null && isLocal(advertised)) {
        cfg.setProperty("hazelcast.local.localAddress", advertised.getHostAddress());
        cfg.setProperty("hazelcast.socket.bind.any", "false");
      }
    }
    return cfg;
  }

  private static InetAddress address(String host) {
    try {
      return InetAddress.getByName(host);
    } catch (UnknownHostException e) {
      return null;
    }
  }

  private static boolean isLocal(InetAddress a) {
    if (a.isAnyLocalAddress()) {
      return false;
    }
    try {
      return NetworkInterface.getByInetAddress(a) != null;
    } catch (SocketException e) {
      return false;
    }
  }
}
