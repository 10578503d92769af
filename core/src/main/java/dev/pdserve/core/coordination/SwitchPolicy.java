package dev.pdserve.core.coordination;

import dev.pdserve.core.cluster.Load;
import dev.pdserve.core.cluster.NodeInfo;
import dev.pdserve.core.cluster.NodeState;
import dev.pdserve.core.config.NodeRole;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;

/**
 * Decides when to move a worker between the PREFILL and DECODE roles (DESIGN §5). Pure decision
 * logic: no registry, no threads, no clock — the caller passes the registry entries and the time,
 * so the live coordinator and the simulator run exactly this code.
 *
 * <p>Each call computes the prefill pressure (queueing delay of the queued prompt tokens against
 * the TTFT target) and the decode pressure (step time against the TPOT target, batch size, KV
 * occupancy; see {@link CoordinatorSettings}), smooths both exponentially over the window, and
 * proposes moving one node from the less to the more pressed role when all of these hold:
 *
 * <ul>
 *   <li>no PREFILL/DECODE node is STARTING, DRAINING or SWITCHING (one switch in flight at most);
 *   <li>the cool-down since the last switch ended (or was decided) has passed;
 *   <li>the starved role's smoothed pressure exceeds the threshold and the donor's;
 *   <li>moving one node (pressure scaled by the node counts) lowers the larger pressure by at least
 *       the improvement margin — so the reverse move cannot pay off right after;
 *   <li>the imbalance has held for the persistence time, and a reversal of the previous direction
 *       waits for the reverse hold;
 *   <li>the donor role keeps at least {@code minNodesPerRole} ACTIVE nodes.
 * </ul>
 *
 * The donor is the least-loaded ACTIVE node of its role. A role with no ACTIVE node at all (and no
 * switch in flight) is refilled from the other role as soon as the cool-down allows.
 *
 * <p>Keeps smoothing state between calls; not thread-safe — call it from one coordinator thread.
 */
public final class SwitchPolicy {
  private enum Direction {
    TO_PREFILL,
    TO_DECODE
  }

  private final CoordinatorSettings settings;
  private double smoothedPrefill;
  private double smoothedDecode;
  private long lastEvalMillis = Long.MIN_VALUE;
  private int lastPrefillCount = -1;
  private int lastDecodeCount = -1;
  private long lastDecisionMillis = Long.MIN_VALUE;
  private long lastBusyMillis = Long.MIN_VALUE;
  private Direction lastDirection;
  private Direction pendingDirection;
  private long pendingSinceMillis;
  private PressureReading lastReading;
  private long switches;

  public SwitchPolicy(CoordinatorSettings settings) {
    this.settings = Objects.requireNonNull(settings, "settings");
  }

  public CoordinatorSettings settings() {
    return settings;
  }

  /** What the latest {@link #decide} call saw and concluded; null before the first call. */
  public PressureReading lastReading() {
    return lastReading;
  }

  /** Switches proposed so far. */
  public long switchesDecided() {
    return switches;
  }

  /** Called periodically by the coordinator; returns at most one switch to start now. */
  public Optional<SwitchDecision> decide(List<NodeInfo> nodes, long nowMillis) {
    Objects.requireNonNull(nodes, "nodes");
    List<NodeInfo> prefill = new ArrayList<>();
    List<NodeInfo> decode = new ArrayList<>();
    NodeInfo busy = null;
    for (NodeInfo n : nodes) {
      if (n.role() != NodeRole.PREFILL && n.role() != NodeRole.DECODE) {
        continue;
      }
      if (n.state() == NodeState.ACTIVE) {
        (n.role() == NodeRole.PREFILL ? prefill : decode).add(n);
      } else if (n.state() != NodeState.STOPPED && busy == null) {
        busy = n;
      }
    }
    double pp = prefillPressure(prefill);
    double pd = decodePressure(decode);
    smooth(prefill.size(), decode.size(), pp, pd, nowMillis);

    if (busy != null) {
      lastBusyMillis = nowMillis;
      pendingDirection = null;
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          "switch in flight: " + busy.id() + " is " + busy.state() + " (" + busy.role() + ")");
    }
    long quietSince = Math.max(lastDecisionMillis, lastBusyMillis);
    if (quietSince != Long.MIN_VALUE && nowMillis - quietSince < settings.cooldownMillis()) {
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          "cool-down " + (settings.cooldownMillis() - (nowMillis - quietSince)) + " ms left");
    }
    // An empty role (its nodes crashed or left) is refilled at once.
    if (prefill.isEmpty() != decode.isEmpty()) {
      Direction d = prefill.isEmpty() ? Direction.TO_PREFILL : Direction.TO_DECODE;
      List<NodeInfo> donors = d == Direction.TO_PREFILL ? decode : prefill;
      if (donors.size() <= settings.minNodesPerRole()) {
        return none(
            nowMillis,
            prefill,
            decode,
            pp,
            pd,
            "role " + target(d) + " is empty but the other role is at its minimum");
      }
      return Optional.of(
          commit(
              d,
              donors,
              nowMillis,
              prefill,
              decode,
              pp,
              pd,
              "role " + target(d) + " has no ACTIVE node"));
    }
    if (prefill.isEmpty()) {
      return none(nowMillis, prefill, decode, pp, pd, "no ACTIVE prefill or decode nodes");
    }

    Direction d = null;
    if (smoothedPrefill > settings.switchThreshold() && smoothedPrefill > smoothedDecode) {
      d = Direction.TO_PREFILL;
    } else if (smoothedDecode > settings.switchThreshold() && smoothedDecode > smoothedPrefill) {
      d = Direction.TO_DECODE;
    }
    if (d == null) {
      pendingDirection = null;
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          "balanced: no pressure above " + fmt(settings.switchThreshold()));
    }
    List<NodeInfo> donors = d == Direction.TO_PREFILL ? decode : prefill;
    if (donors.size() <= settings.minNodesPerRole()) {
      pendingDirection = null;
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          target(d)
              + " is starved but "
              + donorRole(d)
              + " is at its minimum of "
              + settings.minNodesPerRole());
    }
    int np = prefill.size();
    int nd = decode.size();
    double before = Math.max(smoothedPrefill, smoothedDecode);
    double afterPrefill =
        d == Direction.TO_PREFILL
            ? smoothedPrefill * np / (np + 1)
            : smoothedPrefill * np / (np - 1);
    double afterDecode =
        d == Direction.TO_PREFILL ? smoothedDecode * nd / (nd - 1) : smoothedDecode * nd / (nd + 1);
    double after = Math.max(afterPrefill, afterDecode);
    if (after > before * (1 - settings.improvementMargin())) {
      pendingDirection = null;
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          "a move to "
              + target(d)
              + " would only bring the peak pressure from "
              + fmt(before)
              + " to "
              + fmt(after)
              + " (margin "
              + fmt(settings.improvementMargin())
              + ")");
    }
    if (lastDirection != null
        && lastDirection != d
        && nowMillis - lastDecisionMillis < settings.reverseHoldMillis()) {
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          "reversal to "
              + target(d)
              + " held for "
              + (settings.reverseHoldMillis() - (nowMillis - lastDecisionMillis))
              + " ms");
    }
    if (pendingDirection != d) {
      pendingDirection = d;
      pendingSinceMillis = nowMillis;
    }
    if (nowMillis - pendingSinceMillis < settings.persistMillis()) {
      return none(
          nowMillis,
          prefill,
          decode,
          pp,
          pd,
          target(d)
              + " starved for "
              + (nowMillis - pendingSinceMillis)
              + " ms of the "
              + settings.persistMillis()
              + " ms required");
    }
    String reason =
        String.format(
            Locale.ROOT,
            "%s starved: smoothed pressure prefill %.2f decode %.2f with %dP/%dD, "
                + "predicted %.2f/%.2f after the move",
            target(d),
            smoothedPrefill,
            smoothedDecode,
            np,
            nd,
            afterPrefill,
            afterDecode);
    return Optional.of(commit(d, donors, nowMillis, prefill, decode, pp, pd, reason));
  }

  private SwitchDecision commit(
      Direction d,
      List<NodeInfo> donors,
      long nowMillis,
      List<NodeInfo> prefill,
      List<NodeInfo> decode,
      double pp,
      double pd,
      String reason) {
    NodeInfo donor =
        donors.stream().min(d == Direction.TO_PREFILL ? DECODE_LOAD : PREFILL_LOAD).orElseThrow();
    lastDecisionMillis = nowMillis;
    lastDirection = d;
    pendingDirection = null;
    switches++;
    SwitchDecision decision =
        new SwitchDecision(donor.id(), donor.role(), target(d), donor.epoch(), reason);
    lastReading =
        reading(
            nowMillis,
            prefill,
            decode,
            pp,
            pd,
            "switch " + donor.id() + " to " + target(d) + ": " + reason);
    return decision;
  }

  private static final Comparator<NodeInfo> PREFILL_LOAD =
      Comparator.<NodeInfo>comparingLong(n -> n.load().queuedPromptTokens())
          .thenComparingInt(n -> n.load().runningSequences())
          .thenComparing(NodeInfo::id);

  private static final Comparator<NodeInfo> DECODE_LOAD =
      Comparator.<NodeInfo>comparingInt(n -> n.load().runningSequences())
          .thenComparingDouble(n -> n.load().kvOccupancy())
          .thenComparing(NodeInfo::id);

  /** Queueing delay of the queued prompt tokens over the ACTIVE prefill nodes, / TTFT target. */
  double prefillPressure(List<NodeInfo> prefill) {
    if (prefill.isEmpty()) {
      return 0;
    }
    long queued = 0;
    for (NodeInfo n : prefill) {
      queued += n.load().queuedPromptTokens();
    }
    double delayMillis = queued * 1000.0 / (settings.prefillTokensPerSecond() * prefill.size());
    return delayMillis / settings.ttftTargetMillis();
  }

  /**
   * The largest of mean step time / TPOT, mean batch / batch target, mean KV occupancy / target.
   */
  double decodePressure(List<NodeInfo> decode) {
    if (decode.isEmpty()) {
      return 0;
    }
    double step = 0;
    double running = 0;
    double occupancy = 0;
    for (NodeInfo n : decode) {
      Load l = n.load();
      // An idle node's last step time is stale.
      step += l.runningSequences() == 0 ? 0 : l.lastStepMillis();
      running += l.runningSequences();
      occupancy += l.kvOccupancy();
    }
    int n = decode.size();
    return Math.max(
        step / n / settings.tpotTargetMillis(),
        Math.max(
            running / n / settings.decodeBatchTarget(),
            occupancy / n / settings.kvOccupancyTarget()));
  }

  private void smooth(int np, int nd, double pp, double pd, long nowMillis) {
    if (lastEvalMillis == Long.MIN_VALUE
        || np != lastPrefillCount
        || nd != lastDecodeCount
        || nowMillis < lastEvalMillis) {
      // First reading, or the role mix changed: old readings describe another cluster.
      smoothedPrefill = pp;
      smoothedDecode = pd;
    } else {
      double alpha =
          settings.smoothingWindowMillis() == 0
              ? 1
              : 1
                  - Math.exp(
                      -(double) (nowMillis - lastEvalMillis) / settings.smoothingWindowMillis());
      smoothedPrefill += alpha * (pp - smoothedPrefill);
      smoothedDecode += alpha * (pd - smoothedDecode);
    }
    lastEvalMillis = nowMillis;
    lastPrefillCount = np;
    lastDecodeCount = nd;
  }

  private Optional<SwitchDecision> none(
      long nowMillis,
      List<NodeInfo> prefill,
      List<NodeInfo> decode,
      double pp,
      double pd,
      String verdict) {
    lastReading = reading(nowMillis, prefill, decode, pp, pd, verdict);
    return Optional.empty();
  }

  private PressureReading reading(
      long nowMillis,
      List<NodeInfo> prefill,
      List<NodeInfo> decode,
      double pp,
      double pd,
      String verdict) {
    return new PressureReading(
        nowMillis, prefill.size(), decode.size(), pp, pd, smoothedPrefill, smoothedDecode, verdict);
  }

  private static NodeRole target(Direction d) {
    return d == Direction.TO_PREFILL ? NodeRole.PREFILL : NodeRole.DECODE;
  }

  private static NodeRole donorRole(Direction d) {
    return d == Direction.TO_PREFILL ? NodeRole.DECODE : NodeRole.PREFILL;
  }

  private static String fmt(double v) {
    return String.format(Locale.ROOT, "%.2f", v);
  }
}
