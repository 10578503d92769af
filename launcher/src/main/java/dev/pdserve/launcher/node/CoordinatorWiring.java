package dev.pdserve.launcher.node;

import dev.pdserve.core.config.CoordinatorConfig;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.coordination.CoordinatorSettings;
import dev.pdserve.core.coordination.PressureReading;
import dev.pdserve.core.coordination.RoleSwitchRequest;
import dev.pdserve.core.coordination.SwitchPlanner;
import dev.pdserve.core.coordination.SwitchPolicy;
import java.util.Locale;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The switch policy a worker's coordinator runs: {@link SwitchPolicy} with the configured TTFT and
 * TPOT targets and the configured decode batch size as the batch a decode node counts as full at,
 * its decisions turned into switch requests carrying the epoch the policy saw (so a decision made
 * from an outdated registry is refused by the node). The policy's readings are logged: at INFO when
 * there is pressure (at most every {@link #READING_LOG_INTERVAL_MS}), at DEBUG otherwise.
 */
final class CoordinatorWiring {
  private static final Logger LOG = LogManager.getLogger(CoordinatorWiring.class);
  static final long READING_LOG_INTERVAL_MS = 5_000;

  private CoordinatorWiring() {}

  static SwitchPolicy policy(NodeConfig config) {
    CoordinatorConfig c = config.coordinator();
    CoordinatorSettings defaults = CoordinatorSettings.defaults();
    return new SwitchPolicy(
        defaults
            .withTargets(c.ttftTargetMillis(), c.tpotTargetMillis())
            .withCapacity(defaults.prefillTokensPerSecond(), config.engine().decodeMaxBatch()));
  }

  static SwitchPlanner planner(NodeConfig config) {
    SwitchPolicy policy = policy(config);
    long[] lastLogged = {Long.MIN_VALUE};
    return (nodes, now) -> {
      var decision = policy.decide(nodes, now);
      PressureReading r = policy.lastReading();
      if (r != null) {
        boolean pressed = r.prefillPressure() > 0 || r.decodePressure() > 0 || decision.isPresent();
        if (pressed
            && (lastLogged[0] == Long.MIN_VALUE
                || now - lastLogged[0] >= READING_LOG_INTERVAL_MS
                || decision.isPresent())) {
          lastLogged[0] = now;
          LOG.info("coordinator reading: {}", describe(r));
        } else if (LOG.isDebugEnabled()) {
          LOG.debug("coordinator reading: {}", describe(r));
        }
      }
      return decision.map(
          d -> new RoleSwitchRequest(d.nodeId(), d.to(), d.expectedEpoch(), d.reason()));
    };
  }

  static String describe(PressureReading r) {
    return String.format(
        Locale.ROOT,
        "%dP/%dD pressure prefill %.2f (smoothed %.2f) decode %.2f (smoothed %.2f): %s",
        r.prefillNodes(),
        r.decodeNodes(),
        r.prefillPressure(),
        r.smoothedPrefill(),
        r.decodePressure(),
        r.smoothedDecode(),
        r.verdict());
  }
}
