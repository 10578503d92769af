package dev.pdserve.core.config;

import java.net.InetAddress;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Locale;
import java.util.Objects;

/**
 * Everything a pdserve process is told at start-up. Immutable; built once by {@link
 * NodeConfigLoader} (file, then {@code PDSERVE_*} environment variables, then flags) and passed
 * down.
 *
 * @param nodeId registry id of this node, stable for the life of the process
 * @param role the role the node starts in
 * @param network listen and advertised addresses
 * @param cluster Hazelcast membership
 * @param engine model, KV budget, experts, threads
 * @param prefix KV leases, prefix caching, conditional disaggregation
 * @param coordinator role switching: coordinator runtime and drain bound
 * @param router the router's handling of failed nodes and overload
 * @param expertSharding an expert shard's range from a shard count and its ordinal
 * @param shutdown how the node drains when told to stop
 * @param serving the name the model is served under and the node's memory limit
 * @param tls mutual TLS between nodes and TLS of the router's public APIs
 * @param auth API keys and the cluster token: who may call the node
 */
public record NodeConfig(
    String nodeId,
    NodeRole role,
    NetworkSettings network,
    ClusterSettings cluster,
    EngineSettings engine,
    PrefixSettings prefix,
    CoordinatorConfig coordinator,
    RouterConfig router,
    ExpertSharding expertSharding,
    ShutdownSettings shutdown,
    ServingSettings serving,
    TlsSettings.Node tls,
    AuthSettings auth) {

  public NodeConfig {
    Objects.requireNonNull(tls, "tls");
    Objects.requireNonNull(auth, "auth");
    Objects.requireNonNull(prefix, "prefix");
    Objects.requireNonNull(coordinator, "coordinator");
    Objects.requireNonNull(router, "router");
    Objects.requireNonNull(expertSharding, "expertSharding");
    Objects.requireNonNull(shutdown, "shutdown");
    Objects.requireNonNull(serving, "serving");
  }

  /** A config without credentials ({@link AuthSettings#OFF}). */
  public NodeConfig(
      String nodeId,
      NodeRole role,
      NetworkSettings network,
      ClusterSettings cluster,
      EngineSettings engine,
      PrefixSettings prefix,
      CoordinatorConfig coordinator,
      RouterConfig router,
      ExpertSharding expertSharding,
      ShutdownSettings shutdown) {
    this(
        nodeId,
        role,
        network,
        cluster,
        engine,
        prefix,
        coordinator,
        router,
        expertSharding,
        shutdown,
        ServingSettings.DEFAULTS,
        TlsSettings.Node.DISABLED,
        AuthSettings.OFF);
  }

  /** This config with other credentials settings. */
  public NodeConfig withAuth(AuthSettings settings) {
    return new NodeConfig(
        nodeId,
        role,
        network,
        cluster,
        engine,
        prefix,
        coordinator,
        router,
        expertSharding,
        shutdown,
        serving,
        tls,
        settings);
  }

  /** A config with the default router settings, no expert sharding and the default shutdown. */
  public NodeConfig(
      String nodeId,
      NodeRole role,
      NetworkSettings network,
      ClusterSettings cluster,
      EngineSettings engine,
      PrefixSettings prefix,
      CoordinatorConfig coordinator) {
    this(
        nodeId,
        role,
        network,
        cluster,
        engine,
        prefix,
        coordinator,
        RouterConfig.DEFAULTS,
        ExpertSharding.NONE,
        ShutdownSettings.DEFAULTS,
        ServingSettings.DEFAULTS,
        TlsSettings.Node.DISABLED,
        AuthSettings.OFF);
  }

  /**
   * The routed experts an expert shard hosts, for a model whose expert groups have {@code experts}
   * experts: {@code pdserve.expert.range} if set, else this node's part of {@code
   * pdserve.expert.shard-count}, else every expert.
   *
   * @throws IllegalArgumentException if the shard count does not fit the model
   */
  public ExpertRange expertRange(int experts) {
    if (engine.expertRange().isPresent()) {
      return engine.expertRange().get();
    }
    if (expertSharding.enabled()) {
      return expertSharding.rangeFor(nodeId, experts);
    }
    return new ExpertRange(0, experts - 1);
  }

  /** A config with the default prefix and role-switching settings. */
  public NodeConfig(
      String nodeId,
      NodeRole role,
      NetworkSettings network,
      ClusterSettings cluster,
      EngineSettings engine) {
    this(
        nodeId,
        role,
        network,
        cluster,
        engine,
        PrefixSettings.DEFAULTS,
        CoordinatorConfig.DEFAULTS);
  }

  /** A config with the default role-switching settings. */
  public NodeConfig(
      String nodeId,
      NodeRole role,
      NetworkSettings network,
      ClusterSettings cluster,
      EngineSettings engine,
      PrefixSettings prefix) {
    this(nodeId, role, network, cluster, engine, prefix, CoordinatorConfig.DEFAULTS);
  }

  /** A config with the default prefix settings. */
  public NodeConfig(
      String nodeId,
      NodeRole role,
      NetworkSettings network,
      ClusterSettings cluster,
      EngineSettings engine,
      CoordinatorConfig coordinator) {
    this(nodeId, role, network, cluster, engine, PrefixSettings.DEFAULTS, coordinator);
  }

  /**
   * The node id used when none is configured: the host name plus a random suffix, generated once
   * per process (so two processes on one host, or a restarted pod, never share an id).
   */
  public static String processNodeId() {
    return ProcessId.ID;
  }

  private static final class ProcessId {
    static final String ID = generate();

    private static String generate() {
      String host;
      try {
        host = InetAddress.getLocalHost().getHostName();
      } catch (Exception e) {
        host = "node";
      }
      host = host.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9-]", "-");
      if (host.length() > 40) {
        host = host.substring(0, 40);
      }
      byte[] suffix = new byte[3];
      new SecureRandom().nextBytes(suffix);
      return host + "-" + HexFormat.of().formatHex(suffix);
    }
  }
}
