package dev.pdserve.core.cluster;

import com.hazelcast.cluster.Member;
import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.MapConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.config.SplitBrainProtectionConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.splitbrainprotection.SplitBrainProtectionOn;
import dev.pdserve.core.config.ClusterSettings;
import dev.pdserve.core.config.FailureDetection;
import dev.pdserve.core.config.HostPort;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLeaseStore;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * This process's embedded Hazelcast member, configured from a {@link NodeConfig}: TCP-IP join
 * (members listed one by one), Kubernetes DNS join, or none; multicast and auto-detection off;
 * auto-incremented ports; serving-grade failure detection (heartbeat every {@code
 * heartbeatIntervalSeconds}, a silent member dropped after {@code maxNoHeartbeatSeconds});
 * phone-home off; Log4j2 logging; the registry's serializers and map settings.
 *
 * <p>The coordinator of the cluster is the oldest member ({@link #isOldestMember()}). Barring a
 * split brain there is exactly one; set {@code pdserve.cluster.min-size} to make a minority side
 * refuse registry writes.
 *
 * <p>Closing leaves the cluster gracefully; Hazelcast's own JVM shutdown hook is off, so the
 * process's shutdown path decides when (after draining) the member leaves.
 */
public final class ClusterMember implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ClusterMember.class);

  /** Name of the split-brain protection rule applied to the registry maps when min-size > 1. */
  public static final String SPLIT_BRAIN_PROTECTION = "pdserve-registry-quorum";

  /** Split-brain protection of the coordinator lease map ({@link RecentMajority}). */
  public static final String LEASE_PROTECTION = "pdserve-coordinator-majority";

  /**
   * Split-brain protection of the expert placement map: written only by a majority of the recent
   * cluster ({@link RecentMajority}, and at least {@code pdserve.cluster.min-size} members).
   */
  public static final String PLACEMENT_PROTECTION = "pdserve-placement-majority";

  /** Member attribute holding the pdserve node id. */
  public static final String NODE_ID_ATTRIBUTE = "pdserve.node-id";

  /**
   * Member attribute, {@code true} on workers that may act as the coordinator ({@code
   * pdserve.coordinator.enabled}).
   */
  public static final String COORDINATOR_ATTRIBUTE = "pdserve.coordinator-candidate";

  private final NodeConfig config;
  private final HazelcastInstance hz;
  private final List<Consumer<Boolean>> coordinatorListeners = new CopyOnWriteArrayList<>();
  private final Object coordinatorLock = new Object();
  private final UUID membershipRegistration;
  private boolean coordinator; // guarded by coordinatorLock
  private volatile boolean closed;

  private ClusterMember(NodeConfig config, HazelcastInstance hz) {
    this.config = config;
    this.hz = hz;
    synchronized (coordinatorLock) {
      coordinator = isOldestMember();
    }
    this.membershipRegistration =
        hz.getCluster()
            .addMembershipListener(
                new MembershipListener() {
                  @Override
                  public void memberAdded(MembershipEvent event) {
                    membershipChanged();
                  }

                  @Override
                  public void memberRemoved(MembershipEvent event) {
                    membershipChanged();
                  }
                });
    membershipChanged(); // a change between the first check and the listener registration
    LOG.info(
        "node {} joined cluster '{}' at {} as {} of {} member(s){}",
        config.nodeId(),
        config.cluster().name(),
        hazelcastAddress(),
        config.cluster().liteMember() ? "lite member" : "member",
        hz.getCluster().getMembers().size(),
        isOldestMember() ? " (coordinator)" : "");
  }

  /** Starts (and joins) the member; returns once it is part of a cluster. */
  public static ClusterMember start(NodeConfig config) {
    HazelcastInstance hz = Hazelcast.newHazelcastInstance(hazelcastConfig(config));
    awaitSplitBrainProtection(hz, config);
    return new ClusterMember(config, hz);
  }

  /**
   * Hazelcast evaluates split-brain protection on its own executor, the first time a heartbeat
   * interval after start (or on a membership change); until then the protected maps refuse writes,
   * and a shard publishing its place at once would fail. Waits (bounded) for that first evaluation
   * of the expert placement's and the coordinator lease's rules; a member that is not a majority
   * then (a {@code min-size} not yet reached) goes on, and their writes wait for it.
   */
  private static void awaitSplitBrainProtection(HazelcastInstance hz, NodeConfig config) {
    var service = hz.getSplitBrainProtectionService();
    long deadline =
        System.nanoTime()
            + Duration.ofSeconds(2L + 3L * config.cluster().heartbeatIntervalSeconds()).toNanos();
    try {
      for (String name : List.of(PLACEMENT_PROTECTION, LEASE_PROTECTION)) {
        while (!service.getSplitBrainProtection(name).hasMinimumSize()
            && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** The Hazelcast configuration {@link #start} uses; exposed for inspection and for tools. */
  public static Config hazelcastConfig(NodeConfig node) {
    ClusterSettings c = node.cluster();
    Config cfg = new Config();
    cfg.setClusterName(c.name());
    cfg.setInstanceName("pdserve-" + node.nodeId());
    cfg.setLiteMember(c.liteMember());
    cfg.getMemberAttributeConfig().setAttribute(NODE_ID_ATTRIBUTE, node.nodeId());
    boolean worker = node.role() == NodeRole.PREFILL || node.role() == NodeRole.DECODE;
    cfg.getMemberAttributeConfig()
        .setAttribute(
            COORDINATOR_ATTRIBUTE,
            Boolean.toString(worker && node.coordinator().enabled() && !c.liteMember()));

    cfg.setProperty("hazelcast.logging.type", "log4j2");
    cfg.setProperty("hazelcast.phone.home.enabled", "false");
    cfg.setProperty("hazelcast.shutdownhook.enabled", "false");
    cfg.setProperty(
        "hazelcast.heartbeat.interval.seconds", Integer.toString(c.heartbeatIntervalSeconds()));
    cfg.setProperty(
        "hazelcast.max.no.heartbeat.seconds", Integer.toString(c.maxNoHeartbeatSeconds()));
    cfg.setProperty("hazelcast.wait.seconds.before.join", Integer.toString(c.joinWaitSeconds()));
    cfg.setProperty(
        "hazelcast.max.wait.seconds.before.join",
        Integer.toString(Math.max(c.joinWaitSeconds(), 1) * 4));
    FailureDetection fd = c.failureDetection();
    cfg.setProperty("hazelcast.heartbeat.failuredetector.type", fd.detector().hazelcastName());
    cfg.setProperty(
        "hazelcast.heartbeat.phiaccrual.failuredetector.threshold",
        Double.toString(fd.phiThreshold()));
    // One output thread per peer (up to the setting): a peer that stops reading — a frozen
    // process, whose kernel still accepts bytes — once kept an output thread busy for seconds
    // after this member suspected it, and the heartbeats to every other peer on that thread
    // stopped, so healthy members suspected each other (the "membership cascade" of
    // docs/RELIABILITY.md); with three threads shared by a dozen peers that was most freezes.
    cfg.setProperty("hazelcast.io.output.thread.count", Integer.toString(c.outputThreads()));
    // Members that started apart, a healed partition, or a node that woke from a freeze alone
    // merge in seconds, not the default 5 minutes.
    String merge = Integer.toString(fd.mergeIntervalSeconds());
    cfg.setProperty("hazelcast.merge.first.run.delay.seconds", merge);
    cfg.setProperty("hazelcast.merge.next.run.delay.seconds", merge);

    NetworkConfig net = cfg.getNetworkConfig();
    net.setPort(c.port()).setPortAutoIncrement(true).setPortCount(100);
    String bindHost = node.network().bindHost();
    String advertised = node.network().advertisedHost();
    InetAddress bind = resolve(bindHost);
    if (!bind.isAnyLocalAddress()) {
      // The bind address itself, not interface matching: an address such as 127.0.0.5 is
      // reachable (all of 127/8 is loopback) but is no interface's address, so matching fails.
      cfg.setProperty("hazelcast.local.localAddress", bind.getHostAddress());
      cfg.setProperty("hazelcast.socket.bind.any", "false");
    }
    if (!advertised.equals(bindHost)) {
      net.setPublicAddress(advertised);
    }

    JoinConfig join = net.getJoin();
    join.getMulticastConfig().setEnabled(false);
    join.getAutoDetectionConfig().setEnabled(false);
    join.getTcpIpConfig().setEnabled(false);
    join.getKubernetesConfig().setEnabled(false);
    switch (c.join()) {
      case TCPIP -> {
        // 5 s, not 2: a seed busy starting (JIT, model build) on a loaded machine may take seconds
        // to
        // answer, and a joiner that gives up forms a cluster of its own that must merge later.
        join.getTcpIpConfig().setEnabled(true).setConnectionTimeoutSeconds(5);
        for (HostPort m : c.members()) {
          join.getTcpIpConfig().addMember(m.toString());
        }
      }
      case KUBERNETES -> {
        join.getKubernetesConfig()
            .setEnabled(true)
            .setProperty("service-dns", c.kubernetesServiceDns())
            .setProperty("service-dns-timeout", "5");
        if (c.port() != 0) {
          join.getKubernetesConfig().setProperty("service-port", Integer.toString(c.port()));
        }
      }
      case NONE -> {}
    }

    ClusterSerialization.configure(cfg.getSerializationConfig());

    String protection = null;
    if (c.minClusterSize() > 1) {
      protection = SPLIT_BRAIN_PROTECTION;
      cfg.addSplitBrainProtectionConfig(
          new SplitBrainProtectionConfig(SPLIT_BRAIN_PROTECTION, true, c.minClusterSize())
              .setProtectOn(SplitBrainProtectionOn.READ_WRITE));
    }
    for (String map : List.of(NodeRegistry.MAP_NAME, ExpertPlacementStore.MAP_NAME)) {
      MapConfig mc =
          new MapConfig(map).setBackupCount(1).setAsyncBackupCount(0).setPerEntryStatsEnabled(true);
      mc.getMergePolicyConfig().setPolicy(RegistryMergePolicy.class.getName());
      mc.setSplitBrainProtectionName(
          map.equals(ExpertPlacementStore.MAP_NAME) ? PLACEMENT_PROTECTION : protection);
      cfg.addMapConfig(mc);
    }
    // The expert placement: a member cut off from the others (a node that woke alone from a
    // freeze, the small side of a split) sees every other shard's registry entry gone and would
    // prune them all, publishing a placement version of its own that the merge cannot reconcile
    // with the live side's. Only a majority of the recent cluster writes it; the cut-off side's
    // pruner and shards retry until they are back in that majority.
    cfg.addSplitBrainProtectionConfig(
        new SplitBrainProtectionConfig(PLACEMENT_PROTECTION, true)
            .setProtectOn(
                c.minClusterSize() > 1
                    ? SplitBrainProtectionOn.READ_WRITE
                    : SplitBrainProtectionOn.WRITE)
            .setFunctionImplementation(
                new RecentMajority(
                    Duration.ofSeconds(fd.quorumWindowSeconds()), c.minClusterSize())));
    // The coordinator lease: writable (taken, confirmed) only by a majority of the recent cluster.
    cfg.addSplitBrainProtectionConfig(
        new SplitBrainProtectionConfig(LEASE_PROTECTION, true)
            .setProtectOn(SplitBrainProtectionOn.WRITE)
            .setFunctionImplementation(
                new RecentMajority(Duration.ofSeconds(fd.quorumWindowSeconds()))));
    MapConfig lease = new MapConfig(CoordinatorLeaseStore.MAP_NAME).setBackupCount(1);
    lease.getMergePolicyConfig().setPolicy(RegistryMergePolicy.class.getName());
    lease.setSplitBrainProtectionName(LEASE_PROTECTION);
    cfg.addMapConfig(lease);
    return HazelcastHardening.apply(cfg, node);
  }

  private static InetAddress resolve(String host) {
    try {
      return InetAddress.getByName(host);
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException("pdserve.bind.host: cannot resolve '" + host + "'", e);
    }
  }

  public NodeConfig config() {
    return config;
  }

  public HazelcastInstance hazelcast() {
    return hz;
  }

  /** This member's Hazelcast UUID (the {@code memberId} of the registry entries it writes). */
  public UUID memberId() {
    return hz.getCluster().getLocalMember().getUuid();
  }

  /** Where this member accepts Hazelcast connections (a seed address for others). */
  public HostPort hazelcastAddress() {
    var a = hz.getCluster().getLocalMember().getAddress();
    return new HostPort(a.getHost(), a.getPort());
  }

  /** Number of members in the cluster as this member sees it. */
  public int clusterSize() {
    return hz.getCluster().getMembers().size();
  }

  /**
   * Whether this member is the oldest of the cluster list, i.e. the coordinator. Hazelcast keeps
   * the member list ordered by age and identical on every member, so one member answers true at a
   * time.
   */
  public boolean isOldestMember() {
    if (closed || !hz.getLifecycleService().isRunning()) {
      return false;
    }
    Iterator<Member> it = hz.getCluster().getMembers().iterator();
    return it.hasNext() && it.next().localMember();
  }

  /**
   * Calls {@code listener} with the current coordinator status now, then with every change (on a
   * Hazelcast event thread: keep it quick, hand work off), and with {@code false} when this member
   * closes. Closing the returned handle unsubscribes.
   */
  public Subscription onCoordinatorChange(Consumer<Boolean> listener) {
    synchronized (coordinatorLock) {
      coordinatorListeners.add(listener);
      listener.accept(coordinator);
    }
    return () -> coordinatorListeners.remove(listener);
  }

  private void membershipChanged() {
    setCoordinator(isOldestMember());
  }

  private void setCoordinator(boolean now) {
    synchronized (coordinatorLock) {
      if (now == coordinator) {
        return;
      }
      coordinator = now;
      LOG.info("node {} {} the coordinator", config.nodeId(), now ? "is now" : "is no longer");
      for (Consumer<Boolean> l : coordinatorListeners) {
        try {
          l.accept(now);
        } catch (RuntimeException e) {
          LOG.warn("coordinator listener failed", e);
        }
      }
    }
  }

  /** Leaves the cluster gracefully (partitions migrate to the remaining members). Idempotent. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      hz.getCluster().removeMembershipListener(membershipRegistration);
    } catch (RuntimeException ignored) {
      // already shutting down
    }
    setCoordinator(false);
    LOG.info("node {} leaving cluster '{}'", config.nodeId(), config.cluster().name());
    hz.shutdown();
  }

  /**
   * Stops the member abruptly, as a crash would: no graceful leave, no migration. For tests and
   * tools.
   */
  public void terminate() {
    closed = true;
    setCoordinator(false);
    hz.getLifecycleService().terminate();
  }
}
