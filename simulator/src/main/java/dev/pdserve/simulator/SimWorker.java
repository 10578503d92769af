package dev.pdserve.simulator;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;

/** A modelled worker: both role engines' queues, its registry entry, and what it last published. */
final class SimWorker {
  final String id;
  final long kvTotalBlocks;
  NodeRole role;
  NodeState state = NodeState.ACTIVE;
  long epoch = 1;
  NodeRole switchTo;

  // prefill role
  final ArrayDeque<SimFlight> prefillQueue = new ArrayDeque<>();
  long queuedPromptTokens;
  boolean prefillBusy;

  // decode role
  final List<SimFlight> running = new ArrayList<>();
  final ArrayDeque<SimFlight> waiting = new ArrayDeque<>();
  long usedBlocks;

  /** Requests whose KV this node reserved and that have not joined its batch yet. */
  final LinkedHashSet<SimFlight> reserved = new LinkedHashSet<>();

  boolean decodeBusy;

  double lastStepMs;
  Load published = Load.IDLE;
  long publishedAtMillis;
  long prefillJobs;
  long decodeSequences;

  SimWorker(String id, NodeRole role, long kvTotalBlocks) {
    this.id = id;
    this.role = role;
    this.kvTotalBlocks = kvTotalBlocks;
  }

  long kvFreeBlocks() {
    return kvTotalBlocks - usedBlocks;
  }

  boolean decodeEmpty() {
    return running.isEmpty() && waiting.isEmpty() && reserved.isEmpty();
  }

  /** The load figures a real worker publishes every interval (see WorkerNode). */
  void publish(long nowMillis) {
    if (role == NodeRole.PREFILL) {
      published = new Load(queuedPromptTokens, 0, kvTotalBlocks, kvTotalBlocks, lastStepMs);
    } else {
      published =
          new Load(0, running.size() + waiting.size(), kvFreeBlocks(), kvTotalBlocks, lastStepMs);
    }
    publishedAtMillis = nowMillis;
  }

  /**
   * The registry entry: role/state/epoch as of now (CAS writes are immediate), load as last
   * published.
   */
  NodeInfo info() {
    return new NodeInfo(id, role, state, epoch, "", "", "", "", published, publishedAtMillis);
  }
}
