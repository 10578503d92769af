package dev.pdserve.core.experts;

import com.google.common.base.Ticker;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.cluster.ExpertPlacementStore;
import dev.pdserve.core.cluster.Subscription;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.internal.v1.DispatchRequest;
import dev.pdserve.internal.v1.DispatchResponse;
import dev.pdserve.internal.v1.ExpertServiceGrpc;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.engine.RoutedBatch;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.apache.logging.log4j.ThreadContext;

/**
 * Routed experts computed by expert shards over gRPC ({@code ExpertService.Dispatch}). Per call
 * (one MoE layer of one step) it splits the batch with {@link DispatchPlan} under the placement
 * current at the start of the call, sends one request per shard (all of them at once, each with the
 * call deadline), and adds the shards' float64 partial sums in shard id order before rounding once
 * to float — the same floats as {@link dev.pdserve.model.engine.LocalExperts}.
 *
 * <p>The placement changes only between calls: {@link #updatePlacement} (or {@link #followStore})
 * swaps in a newer version, which the next call picks up; a call in flight keeps the one it started
 * with. Results do not depend on the placement, so a step whose layers straddle a switch is still
 * exact.
 *
 * <p>Tensors travel as protobuf bytes: a 1,024-token prefill at hidden 2560 sends 10 MiB of hidden
 * states and gets 20 MiB of float64 partials back, well past gRPC's 4 MiB default, so every call
 * sets its inbound and outbound limits to {@link Settings#maxMessageBytes()}; shards accept as
 * much. Thread-safe; it owns no resources (the {@link Channels} are the caller's).
 */
public final class RemoteExperts implements ExpertBackend {
  private static final Logger LOG = LogManager.getLogger(RemoteExperts.class);

  /**
   * Answers up to this size (decode-sized batches) are parsed and handed over on the transport
   * thread, saving a thread hop per call (~10-15% of a small call's latency on loopback); larger
   * ones (prefill) go through the channels' callback pool so that parsing megabytes does not hold
   * up a Netty event loop shared by other channels.
   */
  static final long DIRECT_CALLBACK_MAX_BYTES = 1 << 20;

  /**
   * @param deadline per call: every shard request of one layer must answer within it
   * @param maxMessageBytes largest request or response of one shard call
   * @param failedShardHold how long every call skips a shard that was unreachable (then it is tried
   *     again); zero = never skip
   * @param ticker the clock of the hold
   */
  public record Settings(
      Duration deadline, int maxMessageBytes, Duration failedShardHold, Ticker ticker) {
    /** 256 MiB: a 4k-token prefill at hidden 2560 answers with 80 MiB of partials. */
    public static final int DEFAULT_MAX_MESSAGE_BYTES = 256 << 20;

    /** A dead shard is skipped this long after each failed call to it. */
    public static final Duration DEFAULT_FAILED_SHARD_HOLD = Duration.ofSeconds(5);

    public Settings {
      if (deadline == null || deadline.isNegative() || deadline.isZero()) {
        throw new IllegalArgumentException("expert dispatch deadline must be > 0, got " + deadline);
      }
      if (maxMessageBytes < 1) {
        throw new IllegalArgumentException(
            "expert dispatch maxMessageBytes must be >= 1, got " + maxMessageBytes);
      }
      if (failedShardHold == null || failedShardHold.isNegative()) {
        throw new IllegalArgumentException(
            "failed expert shard hold must be >= 0, got " + failedShardHold);
      }
      Objects.requireNonNull(ticker, "ticker");
    }

    public static Settings defaults() {
      return new Settings(
          Duration.ofSeconds(10),
          DEFAULT_MAX_MESSAGE_BYTES,
          DEFAULT_FAILED_SHARD_HOLD,
          Ticker.systemTicker());
    }

    public Settings withDeadline(Duration d) {
      return new Settings(d, maxMessageBytes, failedShardHold, ticker);
    }

    public Settings withFailedShardHold(Duration hold, Ticker clock) {
      return new Settings(deadline, maxMessageBytes, hold, clock);
    }
  }

  private final ShardDirectory directory;
  private final Channels channels;
  private final Settings settings;
  private final AtomicReference<ExpertPlacement> placement = new AtomicReference<>();
  private final DispatchMetrics metrics = new DispatchMetrics();
  private final ShardHealth health;

  /** Experts a newer placement left without a host → the shards that hosted them before. */
  private final Map<ExpertPlacement.ExpertKey, List<String>> formerHosts =
      new ConcurrentHashMap<>();

  /**
   * @param initial the placement to start with; null to wait for {@link #updatePlacement} (calls
   *     fail until then)
   * @param directory shard id → gRPC address
   * @param channels the client channels (owned by the caller)
   */
  public RemoteExperts(
      ExpertPlacement initial, ShardDirectory directory, Channels channels, Settings settings) {
    this.directory = directory;
    this.channels = channels;
    this.settings = settings;
    this.health = new ShardHealth(settings.ticker(), settings.failedShardHold());
    if (initial != null) {
      placement.set(initial);
    }
  }

  /** The placement the next call will use; null if none yet. */
  public ExpertPlacement placement() {
    return placement.get();
  }

  public DispatchMetrics metrics() {
    return metrics;
  }

  /**
   * Adopts {@code next} for the calls that start from now on, if it is newer than the current
   * placement (older or equal versions are ignored: events may arrive late or twice).
   *
   * @return whether it was adopted
   */
  public boolean updatePlacement(ExpertPlacement next) {
    while (true) {
      ExpertPlacement cur = placement.get();
      if (cur != null && next.version() <= cur.version()) {
        return false;
      }
      if (placement.compareAndSet(cur, next)) {
        remember(cur, next);
        LOG.info(
            "expert placement v{} adopted ({} shards)", next.version(), next.shardIds().size());
        return true;
      }
    }
  }

  /**
   * Follows the registry: adopts its current placement now and every newly published one. Close the
   * returned subscription to stop.
   */
  public Subscription followStore(ExpertPlacementStore store) {
    Subscription sub = store.onPublish(this::updatePlacement);
    Subscription merges = store.onMerge(this::adoptMerged);
    store.current().ifPresent(this::updatePlacement);
    return () -> {
      merges.close();
      sub.close();
    };
  }

  /**
   * Adopts {@code stored}, the placement a healed split brain left in the registry, whatever its
   * version: the side this member was on may have held a placement of its own (even one with the
   * same version number), and only the stored one is the cluster's.
   *
   * @return whether it differed from the current placement
   */
  public boolean adoptMerged(ExpertPlacement stored) {
    while (true) {
      ExpertPlacement cur = placement.get();
      if (stored.equals(cur)) {
        return false;
      }
      if (placement.compareAndSet(cur, stored)) {
        remember(cur, stored);
        LOG.warn(
            "expert placement v{} ({} shards) adopted after a split brain healed; this member had"
                + " v{} ({})",
            stored.version(),
            stored.shardIds().size(),
            cur == null ? 0 : cur.version(),
            cur == null ? "none" : cur.shardIds());
        return true;
      }
    }
  }

  @Override
  public float[] routed(RoutedBatch batch) {
    int h = batch.hidden();
    double[] acc = new double[batch.rows() * h];
    ExpertPlacement p = placement.get();
    if (batch.rows() > 0) {
      if (p == null) {
        throw ExpertDispatchException.unplaced(
            batch.layer(), "no expert placement has been published yet");
      }
      // An expert goes to a replica that is registered (a crashed shard's entry leaves the
      // registry within the failure-detection time), not held down after failing recently, and,
      // within this call, has not just failed (unreachable, or silent past the deadline: a frozen
      // process): a dead replica costs one retry on its replicas, not the request; experts left
      // without any such replica fail the call at once, named.
      Map<String, String> failed = new HashMap<>();
      while (true) {
        DispatchPlan plan = DispatchPlan.of(batch, p, id -> usable(id, failed));
        if (!plan.missing().isEmpty()) {
          throw noLiveShard(batch.layer(), p, plan.missing(), failed);
        }
        if (plan.slices().isEmpty()) {
          break;
        }
        double[] attempt = new double[acc.length];
        try {
          dispatch(batch, p, plan, attempt);
          acc = attempt;
          break;
        } catch (ExpertDispatchException e) {
          if (e.shardId() == null || failed.containsKey(e.shardId()) || !shardDown(e.status())) {
            throw e;
          }
          String address = directory.address(e.shardId()).orElse("");
          String why =
              e.status().getCode()
                  + (e.status().getDescription() == null ? "" : ": " + e.status().getDescription());
          failed.put(
              e.shardId(), (address.isEmpty() ? "" : "at " + address + " ") + "failed: " + why);
          health.failed(e.shardId(), address, why);
          LOG.warn(
              "layer {}: expert shard {} failed ({}); calls skip it for {} ms",
              batch.layer(),
              e.shardId(),
              e.status().getCode(),
              settings.failedShardHold().toMillis());
        }
      }
    }
    float[] out = new float[acc.length];
    for (int i = 0; i < acc.length; i++) {
      out[i] = (float) acc[i];
    }
    return out;
  }

  private void dispatch(RoutedBatch batch, ExpertPlacement p, DispatchPlan plan, double[] acc) {
    int layer = batch.layer();
    int h = batch.hidden();
    List<DispatchPlan.Slice> slices = plan.slices();
    List<String> addresses = new ArrayList<>(slices.size());
    List<ListenableFuture<DispatchResponse>> futures = new ArrayList<>(slices.size());
    // For the shards' logs: the calling step's request (its first one when it batches several).
    String requestId = ThreadContext.get(LogContext.REQUEST_ID);
    long start = System.nanoTime();
    boolean ok = false;
    try {
      for (DispatchPlan.Slice s : slices) {
        String address =
            directory
                .address(s.shardId())
                .orElseThrow(
                    () ->
                        ExpertDispatchException.shardProblem(
                            s.shardId(),
                            layer,
                            "the shard has no known gRPC address (not registered?)"));
        addresses.add(address);
        ManagedChannel channel;
        try {
          channel = channels.get(address);
        } catch (IllegalArgumentException e) {
          throw ExpertDispatchException.shardProblem(
              s.shardId(), layer, "bad address '" + address + "': " + e.getMessage());
        }
        DispatchRequest.Builder req =
            DispatchRequest.newBuilder()
                .setRequestId(
                    requestId == null || requestId.isEmpty() ? "batch:" + batch.rows() : requestId)
                .setLayer(layer)
                .setRows(s.rows())
                .setHidden(h)
                .setTopK(batch.topK())
                .setHn(DispatchCodec.floats(s.hn()))
                .setPlacementVersion(p.version());
        for (int g : s.group()) {
          req.addGroup(g);
        }
        for (int e : s.expertIds()) {
          req.addExpertIds(e);
        }
        for (float w : s.weights()) {
          req.addWeights(w);
        }
        ExpertServiceGrpc.ExpertServiceFutureStub stub =
            ExpertServiceGrpc.newFutureStub(channel)
                .withDeadlineAfter(settings.deadline().toNanos(), TimeUnit.NANOSECONDS)
                .withMaxInboundMessageSize(settings.maxMessageBytes())
                .withMaxOutboundMessageSize(settings.maxMessageBytes());
        if ((long) s.rows() * h * Double.BYTES <= DIRECT_CALLBACK_MAX_BYTES) {
          stub = stub.withExecutor(MoreExecutors.directExecutor());
        }
        futures.add(stub.dispatch(req.build()));
        metrics.sent(s.shardId(), s.rows(), s.slots());
      }
      List<DispatchResponse> responses;
      try {
        responses = Futures.allAsList(futures).get();
      } catch (ExecutionException e) {
        throw firstFailure(slices, addresses, futures, layer, p.version(), e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw ExpertDispatchException.interrupted(layer, e);
      }
      for (int i = 0; i < slices.size(); i++) { // shard id order: a fixed summation order
        DispatchPlan.Slice s = slices.get(i);
        double[] partial;
        try {
          partial = DispatchCodec.toDoubles(responses.get(i).getPartial());
        } catch (IllegalArgumentException e) {
          throw ExpertDispatchException.shardProblem(
              s.shardId(), layer, "malformed partial sums: " + e.getMessage());
        }
        if (partial.length != s.rows() * h) {
          throw ExpertDispatchException.shardProblem(
              s.shardId(),
              layer,
              "returned "
                  + partial.length
                  + " partial values, expected "
                  + s.rows()
                  + " rows × "
                  + h);
        }
        int[] rowIndex = s.rowIndex();
        for (int r = 0; r < rowIndex.length; r++) {
          int ao = rowIndex[r] * h;
          int po = r * h;
          for (int d = 0; d < h; d++) {
            acc[ao + d] += partial[po + d];
          }
        }
      }
      ok = true;
    } finally {
      if (!ok) {
        futures.forEach(f -> f.cancel(true));
      }
      metrics.call(System.nanoTime() - start, ok);
    }
  }

  /**
   * Whether a shard's failure says the shard itself is gone or stuck, so its experts go to a
   * replica: unreachable (UNAVAILABLE), or no answer within the dispatch deadline (a frozen or
   * wedged process; the call is idempotent, so asking a replica is safe). Any other status is the
   * shard's answer, given to the caller.
   */
  static boolean shardDown(Status status) {
    return status.getCode() == Status.Code.UNAVAILABLE
        || status.getCode() == Status.Code.DEADLINE_EXCEEDED;
  }

  /** Whether calls may send to {@code shardId} now (registered, not held down or just failed). */
  private boolean usable(String shardId, Map<String, String> failedThisCall) {
    if (failedThisCall.containsKey(shardId)) {
      return false;
    }
    Optional<String> address = directory.address(shardId);
    return address.isPresent() && health.whyDown(shardId, address.get()) == null;
  }

  /** UNAVAILABLE naming the experts without a usable shard and why each has none. */
  private ExpertDispatchException noLiveShard(
      int layer,
      ExpertPlacement p,
      List<ExpertPlacement.ExpertKey> missing,
      Map<String, String> failedThisCall) {
    Set<String> named = new TreeSet<>();
    String what =
        MissingExperts.describe(
            layer,
            missing,
            k -> {
              List<String> hosts = p.shardsFor(k.layer(), k.group(), k.expert());
              if (hosts.isEmpty()) {
                List<String> former = formerHosts.get(k);
                if (former == null) {
                  return "expert placement v" + p.version() + " places no shard for it";
                }
                named.addAll(former);
                return (former.size() == 1 ? "shard " : "shards ")
                    + String.join(", ", former)
                    + (former.stream().allMatch(h -> directory.address(h).isEmpty())
                        ? " left the cluster"
                        : " left expert placement v" + p.version());
              }
              named.addAll(hosts);
              List<String> whys = new ArrayList<>();
              for (String h : hosts) {
                whys.add("shard " + h + " " + whyUnusable(h, failedThisCall));
              }
              return String.join(", ", whys);
            });
    return ExpertDispatchException.noLiveShard(
        named.size() == 1 ? named.iterator().next() : null, layer, what);
  }

  private String whyUnusable(String shardId, Map<String, String> failedThisCall) {
    String now = failedThisCall.get(shardId);
    if (now != null) {
      return now;
    }
    Optional<String> address = directory.address(shardId);
    if (address.isEmpty()) {
      return "left the cluster";
    }
    String down = health.whyDown(shardId, address.get());
    return down == null ? "is not usable" : "at " + address.get() + " " + down;
  }

  /** Keeps what {@code next} dropped (for messages) and forgets failures of shards placed anew. */
  private void remember(ExpertPlacement cur, ExpertPlacement next) {
    if (cur != null) {
      cur.shards()
          .forEach(
              (k, hosts) -> {
                if (!next.shards().containsKey(k)) {
                  formerHosts.put(k, hosts);
                }
              });
      for (String id : next.shardIds()) {
        if (!cur.shardIds().contains(id)) {
          health.forget(id);
        }
      }
    }
    next.shards().keySet().forEach(formerHosts::remove);
  }

  /** The first failed shard in shard id order (deterministic when several failed). */
  private ExpertDispatchException firstFailure(
      List<DispatchPlan.Slice> slices,
      List<String> addresses,
      List<ListenableFuture<DispatchResponse>> futures,
      int layer,
      long version,
      ExecutionException any) {
    for (int i = 0; i < futures.size(); i++) {
      ListenableFuture<DispatchResponse> f = futures.get(i);
      if (!f.isDone() || f.isCancelled()) {
        continue;
      }
      try {
        Futures.getDone(f);
      } catch (ExecutionException e) {
        String shard = slices.get(i).shardId();
        metrics.shardFailed(shard);
        ExpertDispatchException ex =
            ExpertDispatchException.shardFailed(
                shard,
                addresses.get(i),
                layer,
                version,
                Status.fromThrowable(e.getCause()),
                e.getCause());
        LOG.warn("{}", ex.getMessage());
        return ex;
      }
    }
    return ExpertDispatchException.shardFailed(
        slices.get(0).shardId(),
        addresses.get(0),
        layer,
        version,
        Status.fromThrowable(any.getCause()),
        any.getCause());
  }
}
