package dev.pdserve.core.config;

import java.time.Duration;

/**
 * Keys for leases, the prefix cache, role switching, expert sharding, shutdown and {@code pdserve
 * local}. Part of {@link ConfigKeys}, where every key is listed.
 */
public interface ServingKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<Integer> KV_LEASE_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.kv.lease-seconds",
              new ValueType.Int(1, 3600),
              PrefixSettings.DEFAULT_LEASE_SECONDS,
              "a decode reservation (and its running request) is freed when its router has not"
                  + " renewed it for this long (the router renews every lease/3)"));
  ConfigKey<KvFailurePolicy> KV_FAILURE_POLICY =
      GROUP.define(
          ConfigKey.of(
              "pdserve.kv.failure-policy",
              ValueType.Choice.ofLowerCase(KvFailurePolicy.class, "must be recompute or fail"),
              RouterConfig.DEFAULTS.kvFailurePolicy(),
              "router: a prefill node failing during a prefill or its KV push — `recompute` the"
                  + " KV (a fresh decode reservation, the prefill on another prefill node, up to 2"
                  + " tries) or `fail` the request with UNAVAILABLE"));
  ConfigKey<Boolean> PREFILL_PREFIX_CACHE =
      GROUP.define(
          ConfigKey.of(
              "pdserve.prefill.prefix-cache",
              KeyTypes.BOOL,
              PrefixSettings.DEFAULTS.prefixCache(),
              "prefill nodes keep prompts' full KV blocks (LRU, evicted on demand) and reuse them"
                  + " for prompts sharing a prefix"));
  ConfigKey<Boolean> COORDINATOR_ENABLED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.coordinator.enabled",
              KeyTypes.BOOL,
              CoordinatorConfig.DEFAULTS.enabled(),
              "worker may act as the coordinator (the oldest enabled worker does) and switch roles"
                  + " by policy"));
  ConfigKey<Integer> COORDINATOR_PERIOD_MS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.coordinator.period-ms",
              new ValueType.Int(10, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.period().toMillis(),
              "how often the coordinator reads the registry and asks its policy"));
  ConfigKey<Integer> COORDINATOR_TTFT_TARGET_MS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.coordinator.ttft-target-ms",
              new ValueType.Int(1, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.ttftTargetMillis(),
              "time-to-first-token target the switch policy balances"));
  ConfigKey<Integer> COORDINATOR_TPOT_TARGET_MS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.coordinator.tpot-target-ms",
              new ValueType.Int(1, 3_600_000),
              (int) CoordinatorConfig.DEFAULTS.tpotTargetMillis(),
              "time-per-output-token target the switch policy balances"));
  ConfigKey<Integer> ROLE_SWITCH_DRAIN_TIMEOUT_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.role-switch.drain-timeout-seconds",
              new ValueType.Int(1, 86_400),
              (int) CoordinatorConfig.DEFAULTS.drainTimeout().toSeconds(),
              "a switching node still holding work after this returns to ACTIVE in its old role"));
  ConfigKey<Integer> EXPERT_SHARD_COUNT =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.expert.shard-count",
              new ValueType.Int(1, 1 << 16),
              "",
              "expert shard without a range: split the experts into N contiguous ranges and host"
                  + " one (see The CLI)"));
  ConfigKey<Integer> EXPERT_SHARD_INDEX =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.expert.shard-index",
              new ValueType.Int(0, (1 << 16) - 1),
              "node id's trailing `-<ordinal>` mod N",
              "expert shard: which of the N ranges it hosts, 0..N-1; needs"
                  + " pdserve.expert.shard-count"));
  ConfigKey<Duration> SHUTDOWN_TIMEOUT_SECONDS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.shutdown.timeout-seconds",
              new ValueType.Timeout(),
              ShutdownSettings.DEFAULT_TIMEOUT,
              "how long a node drains on SIGTERM before it closes (`--shutdown-timeout`); 0 ="
                  + " close at once"));
  ConfigKey<Integer> LOCAL_RESTART_LIMIT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.local.restart-limit",
              new ValueType.Int(0, 100),
              3,
              "`pdserve local`: times one child process that died is started again within"
                  + " pdserve.local.restart-window (each after a back-off doubling from 1 s to"
                  + " 30 s); past it the whole cluster stops; 0 = stop at the first death"));
  ConfigKey<Duration> LOCAL_RESTART_WINDOW =
      GROUP.define(
          ConfigKey.of(
              "pdserve.local.restart-window",
              new ValueType.Timeout(),
              Duration.ofMinutes(10),
              "`pdserve local`: restarts of a child older than this no longer count against"
                  + " pdserve.local.restart-limit"));
  ConfigKey<Duration> KV_TRANSFER_TIMEOUT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.kv.transfer-timeout",
              new ValueType.Timeout(),
              ServingSettings.DEFAULT_KV_TRANSFER_TIMEOUT,
              "worker: how long one KV handoff may take, from the prefill node opening the push"
                  + " (the KV streams out while the prompt is prefilled, so this bounds the"
                  + " prefill too) to the decode node's acknowledgement; the decode node waits as"
                  + " long for a request's KV; raise it for long prompts on slow hardware (e.g."
                  + " a full-size model on CPU); must be > 0"));
}
