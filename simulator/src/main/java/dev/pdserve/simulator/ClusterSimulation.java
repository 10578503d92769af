package dev.pdserve.simulator;

import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.SwitchDecision;
import dev.pdserve.core.coordination.SwitchPolicy;
import dev.pdserve.router.NodeSelector;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.PriorityQueue;
import java.util.Random;

/**
 * A discrete-event simulation of one cluster: the router's real {@link NodeSelector} picks P and D
 * for every request from the registry view (ACTIVE nodes, load as last published), and in dynamic
 * mode the coordinator's real {@link SwitchPolicy} moves workers between roles, each switch going
 * ACTIVE → DRAINING (a prefill node finishes its queue; a decode node migrates its sequences' KV to
 * other decode nodes, or finishes them where none has room) → SWITCHING (fixed time) → ACTIVE.
 *
 * <p>Single-threaded and deterministic: the same workload, config and seed give the same report.
 */
public final class ClusterSimulation {
  private record Event(double at, long seq, Runnable action) implements Comparable<Event> {
    @Override
    public int compareTo(Event o) {
      int c = Double.compare(at, o.at);
      return c != 0 ? c : Long.compare(seq, o.seq);
    }
  }

  private final SimulationConfig config;
  private final CostModel cost;
  private final List<SimRequest> workload;
  private final NodeSelector selector;
  private final SwitchPolicy policy;
  private final List<SimWorker> workers = new ArrayList<>();
  private final Map<String, SimWorker> byId = new LinkedHashMap<>();
  private final List<SimFlight> flights = new ArrayList<>();
  private final ArrayDeque<SimFlight> pending = new ArrayDeque<>();
  private final PriorityQueue<Event> events = new PriorityQueue<>();
  private final List<String> switchLog = new ArrayList<>();
  private long eventSeq;
  private double now;
  private int finished;

  public ClusterSimulation(SimulationConfig config, List<SimRequest> workload) {
    this(config, workload, new NodeSelector(new Random(config.seed())));
  }

  /** With a given selector (tests pre-load its counters to prove it is what routes). */
  public ClusterSimulation(
      SimulationConfig config, List<SimRequest> workload, NodeSelector selector) {
    this.config = Objects.requireNonNull(config, "config");
    this.cost = config.cost();
    this.workload = List.copyOf(workload);
    this.selector = Objects.requireNonNull(selector, "selector");
    this.policy = config.dynamic() ? new SwitchPolicy(config.policy()) : null;
    int n = config.prefillNodes() + config.decodeNodes();
    for (int i = 0; i < n; i++) {
      SimWorker w =
          new SimWorker(
              String.format(Locale.ROOT, "n%02d", i),
              i < config.prefillNodes() ? NodeRole.PREFILL : NodeRole.DECODE,
              cost.kvBlocksPerNode());
      workers.add(w);
      byId.put(w.id, w);
    }
  }

  /** Runs the whole workload and reports. */
  public SimulationReport run() {
    if (workload.isEmpty()) {
      throw new IllegalArgumentException("the workload has no requests");
    }
    workers.forEach(w -> w.publish(0));
    double lastArrival = 0;
    for (SimRequest r : workload) {
      SimFlight f = new SimFlight(r);
      flights.add(f);
      at(r.arrivalMs(), () -> admit(f));
      lastArrival = Math.max(lastArrival, r.arrivalMs());
    }
    at(config.publishIntervalMs(), this::publishTick);
    if (policy != null) {
      at(config.coordinatorIntervalMs(), this::coordinatorTick);
    }
    double limit = lastArrival + config.drainLimitMs();
    while (!events.isEmpty() && finished < flights.size()) {
      Event e = events.poll();
      if (e.at > limit) {
        now = limit;
        break;
      }
      now = e.at;
      e.action.run();
    }
    for (SimFlight f : flights) {
      if (!f.done()) {
        f.failure = "unfinished " + (long) config.drainLimitMs() + " ms after the last arrival";
      }
    }
    return report(workload.get(0).arrivalMs(), lastArrival);
  }

  private void at(double t, Runnable action) {
    events.add(new Event(t, eventSeq++, action));
  }

  // ---- router -------------------------------------------------------------------------------

  private void admit(SimFlight f) {
    f.blocks = cost.blocksFor((long) f.request.inputTokens() + f.request.outputTokens());
    if (f.blocks > cost.kvBlocksPerNode()) {
      fail(f, "needs " + f.blocks + " KV blocks, a decode node has " + cost.kvBlocksPerNode());
      return;
    }
    pending.add(f);
    startPending();
  }

  /** Starts waiting requests in arrival order while a decode node can reserve their KV. */
  private void startPending() {
    while (!pending.isEmpty() && tryStart(pending.peek())) {
      pending.poll();
    }
  }

  private boolean tryStart(SimFlight f) {
    List<NodeInfo> view = view();
    List<NodeInfo> prefill = active(view, NodeRole.PREFILL);
    List<NodeInfo> decode = active(view, NodeRole.DECODE);
    if (prefill.isEmpty()) {
      return false;
    }
    List<String> tried = new ArrayList<>();
    SimWorker d;
    while (true) {
      NodeInfo pick = selector.chooseDecode(decode, tried);
      if (pick == null) {
        return false;
      }
      d = byId.get(pick.id());
      if (d.kvFreeBlocks() >= f.blocks) {
        break;
      }
      tried.add(pick.id());
    }
    d.usedBlocks += f.blocks;
    d.reserved.add(f);
    f.decodeNode = d;
    SimWorker p = byId.get(selector.choosePrefill(prefill, List.of()).id());
    selector.prefillStarted(p.id, f.request.inputTokens());
    f.prefillNode = p;
    p.prefillJobs++;
    p.prefillQueue.add(f);
    p.queuedPromptTokens += f.request.inputTokens();
    kickPrefill(p);
    return true;
  }

  private List<NodeInfo> view() {
    List<NodeInfo> out = new ArrayList<>(workers.size());
    for (SimWorker w : workers) {
      out.add(w.info());
    }
    return out;
  }

  private static List<NodeInfo> active(List<NodeInfo> view, NodeRole role) {
    return view.stream().filter(n -> n.role() == role && n.state() == NodeState.ACTIVE).toList();
  }

  // ---- prefill node -------------------------------------------------------------------------

  private void kickPrefill(SimWorker w) {
    if (w.prefillBusy || w.prefillQueue.isEmpty()) {
      return;
    }
    List<SimFlight> batch = new ArrayList<>();
    List<Integer> chunk = new ArrayList<>();
    long budget = cost.prefillBatchTokens();
    long tokens = 0;
    double pairs = 0;
    for (SimFlight f : w.prefillQueue) {
      if (budget == 0) {
        break;
      }
      int t =
          (int)
              Math.min(
                  Math.min(cost.prefillChunkTokens(), f.request.inputTokens() - f.prefilled),
                  budget);
      batch.add(f);
      chunk.add(t);
      tokens += t;
      pairs += (double) t * (f.prefilled + t);
      budget -= t;
    }
    double dt = cost.prefillStepMs(tokens, pairs);
    w.prefillBusy = true;
    at(
        now + dt,
        () -> {
          w.prefillBusy = false;
          w.lastStepMs = dt;
          for (int i = 0; i < batch.size(); i++) {
            SimFlight f = batch.get(i);
            f.prefilled += chunk.get(i);
            f.prefillComputeMs += dt;
            w.queuedPromptTokens -= chunk.get(i);
            if (f.prefilled == f.request.inputTokens()) {
              w.prefillQueue.remove(f);
              prefillDone(f);
            }
          }
          kickPrefill(w);
          if (w.state == NodeState.DRAINING
              && w.role == NodeRole.PREFILL
              && w.prefillQueue.isEmpty()) {
            beginSwitching(w);
          }
        });
  }

  private void prefillDone(SimFlight f) {
    f.firstTokenMs = now;
    f.generated = 1;
    f.context = f.request.inputTokens() + 1L;
    selector.prefillEnded(f.prefillNode.id, f.request.inputTokens());
    // KV streams layer by layer during the compute: only what outlasts it delays the decode side.
    double residual =
        Math.max(
            cost.transferLatencyMs(),
            cost.transferMs(f.request.inputTokens()) - f.prefillComputeMs);
    at(
        now + residual,
        () -> {
          SimWorker d = f.decodeNode;
          d.reserved.remove(f);
          selector.decodeStarted(d.id);
          d.decodeSequences++;
          if (f.request.outputTokens() == 1) {
            complete(f);
          } else {
            d.waiting.add(f);
            kickDecode(d);
          }
        });
  }

  // ---- decode node --------------------------------------------------------------------------

  private void kickDecode(SimWorker w) {
    if (w.decodeBusy) {
      return;
    }
    if (w.state == NodeState.DRAINING && w.role == NodeRole.DECODE) {
      migrateAway(w);
      if (w.decodeEmpty()) {
        beginSwitching(w);
        return;
      }
    }
    while (w.running.size() < cost.decodeMaxBatch() && !w.waiting.isEmpty()) {
      w.running.add(w.waiting.poll());
    }
    if (w.running.isEmpty()) {
      return;
    }
    long context = 0;
    for (SimFlight f : w.running) {
      context += f.context;
    }
    double dt = cost.decodeStepMs(w.running.size(), context);
    w.decodeBusy = true;
    at(
        now + dt,
        () -> {
          w.decodeBusy = false;
          w.lastStepMs = dt;
          for (Iterator<SimFlight> it = w.running.iterator(); it.hasNext(); ) {
            SimFlight f = it.next();
            f.generated++;
            f.context++;
            if (f.generated >= f.request.outputTokens()) {
              it.remove();
              complete(f);
            }
          }
          kickDecode(w);
        });
  }

  /**
   * A draining decode node hands its sequences to other ACTIVE decode nodes with room, KV over the
   * link one after another; reservations whose prefill has not started move to another node.
   */
  private void migrateAway(SimWorker w) {
    List<NodeInfo> targets = active(view(), NodeRole.DECODE);
    for (SimFlight f : new ArrayList<>(w.reserved)) {
      if (f.prefilled > 0) {
        continue; // its KV is on the way here; it is migrated after it joins
      }
      SimWorker t = pickWithRoom(targets, f);
      if (t != null) {
        w.reserved.remove(f);
        w.usedBlocks -= f.blocks;
        t.reserved.add(f);
        t.usedBlocks += f.blocks;
        f.decodeNode = t;
      }
    }
    double link = 0;
    List<SimFlight> all = new ArrayList<>(w.running);
    all.addAll(w.waiting);
    for (SimFlight f : all) {
      SimWorker t = pickWithRoom(targets, f);
      if (t == null) {
        continue; // finishes here
      }
      w.running.remove(f);
      w.waiting.remove(f);
      w.usedBlocks -= f.blocks;
      selector.decodeEnded(w.id);
      t.usedBlocks += f.blocks;
      t.reserved.add(f);
      f.decodeNode = t;
      link += cost.transferMs(f.context);
      SimWorker target = t;
      at(
          now + link,
          () -> {
            target.reserved.remove(f);
            selector.decodeStarted(target.id);
            target.decodeSequences++;
            target.waiting.add(f);
            kickDecode(target);
          });
    }
  }

  private SimWorker pickWithRoom(List<NodeInfo> targets, SimFlight f) {
    List<String> tried = new ArrayList<>();
    while (true) {
      NodeInfo pick = selector.chooseDecode(targets, tried);
      if (pick == null) {
        return null;
      }
      SimWorker c = byId.get(pick.id());
      if (c.kvFreeBlocks() >= f.blocks) {
        return c;
      }
      tried.add(pick.id());
    }
  }

  private void complete(SimFlight f) {
    f.finishMs = now;
    SimWorker d = f.decodeNode;
    d.usedBlocks -= f.blocks;
    selector.decodeEnded(d.id);
    finished++;
    if (d.state == NodeState.DRAINING
        && d.role == NodeRole.DECODE
        && !d.decodeBusy
        && d.decodeEmpty()) {
      beginSwitching(d);
    }
    startPending();
  }

  private void fail(SimFlight f, String why) {
    f.failure = why;
    finished++;
  }

  // ---- registry, coordinator ----------------------------------------------------------------

  private void publishTick() {
    for (SimWorker w : workers) {
      w.publish((long) now);
    }
    if (finished < flights.size()) {
      at(now + config.publishIntervalMs(), this::publishTick);
    }
  }

  private void coordinatorTick() {
    Optional<SwitchDecision> d = policy.decide(view(), (long) now);
    d.ifPresent(this::startSwitch);
    if (finished < flights.size()) {
      at(now + config.coordinatorIntervalMs(), this::coordinatorTick);
    }
  }

  private void startSwitch(SwitchDecision d) {
    SimWorker w = byId.get(d.nodeId());
    // The ACTIVE -> DRAINING compare-and-set, fenced by the epoch the policy saw.
    if (w == null
        || w.state != NodeState.ACTIVE
        || w.epoch != d.expectedEpoch()
        || w.role != d.from()) {
      return;
    }
    w.state = NodeState.DRAINING;
    w.epoch++;
    w.switchTo = d.to();
    switchLog.add(
        String.format(
            Locale.ROOT, "%.1f s %s %s->%s (%s)", now / 1000, w.id, d.from(), d.to(), d.reason()));
    if (w.role == NodeRole.PREFILL) {
      if (!w.prefillBusy && w.prefillQueue.isEmpty()) {
        beginSwitching(w);
      }
    } else {
      kickDecode(w);
    }
  }

  private void beginSwitching(SimWorker w) {
    if (w.state != NodeState.DRAINING) {
      return;
    }
    w.state = NodeState.SWITCHING;
    w.epoch++;
    double drained = now;
    at(
        now + cost.switchMs(),
        () -> {
          w.role = w.switchTo;
          w.switchTo = null;
          w.state = NodeState.ACTIVE;
          w.epoch++;
          w.lastStepMs = 0;
          w.publish((long) now);
          int i = switchLog.size() - 1;
          switchLog.set(
              i,
              switchLog.get(i)
                  + String.format(
                      Locale.ROOT,
                      ", drained at %.1f s, ACTIVE at %.1f s",
                      drained / 1000,
                      now / 1000));
          startPending();
        });
  }

  // ---- report -------------------------------------------------------------------------------

  private SimulationReport report(double firstArrival, double lastArrival) {
    SloOutcome slo = SloOutcome.of(flights, config.ttftSloMs(), config.tpotSloMs());
    double spanSeconds = Math.max(1, lastArrival - firstArrival) / 1000;
    Map<String, Long> prefillJobs = new LinkedHashMap<>();
    Map<String, Long> decodeSeqs = new LinkedHashMap<>();
    for (SimWorker w : workers) {
      prefillJobs.put(w.id, w.prefillJobs);
      decodeSeqs.put(w.id, w.decodeSequences);
    }
    return new SimulationReport(
        config.label(),
        workers.size(),
        flights.size(),
        slo.completed(),
        slo.failed(),
        slo.good() / spanSeconds / workers.size(),
        (double) slo.good() / flights.size(),
        slo.ttftPercentilesMs(),
        slo.tpotPercentilesMs(),
        switchLog.size(),
        List.copyOf(switchLog),
        prefillJobs,
        decodeSeqs,
        now);
  }
}
