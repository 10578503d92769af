package dev.pdserve.benchmarks;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.expert.ExpertShard;
import dev.pdserve.expert.grpc.ExpertShardServer;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Expert shards of one model on real Netty servers at 127.0.0.1:0, equal contiguous expert ranges
 * each, and the client channels to reach them.
 */
final class LoopbackShards implements AutoCloseable {
  private final ModelConfig model;
  private final Map<String, ExpertRange> ranges = new TreeMap<>();
  private final Map<String, ExpertShard> shards = new LinkedHashMap<>();
  private final Map<String, ExpertShardServer> servers = new LinkedHashMap<>();
  private final Map<String, String> addresses = new TreeMap<>();
  private final Channels channels = new Channels(Channels.Settings.defaults());

  private LoopbackShards(ModelConfig model) {
    this.model = model;
  }

  /** {@code count} shards named shard-a, shard-b, ..., splitting every group's experts evenly. */
  static LoopbackShards start(ModelConfig model, ModelWeights weights, int count) {
    int experts = model.expertGroups().stream().mapToInt(g -> g.numExperts()).max().orElseThrow();
    LoopbackShards c = new LoopbackShards(model);
    try {
      for (int s = 0; s < count; s++) {
        String id = "shard-" + (char) ('a' + s);
        ExpertRange r =
            ExpertRange.parse((s * experts / count) + "-" + ((s + 1) * experts / count - 1));
        ExpertShard shard = new ExpertShard(id, r, weights, OrtRuntime.shared());
        c.ranges.put(id, r);
        c.shards.put(id, shard);
        ExpertShardServer server = ExpertShardServer.onAddress(shard, "127.0.0.1", 0);
        c.servers.put(id, server);
        server.start();
        c.addresses.put(id, "127.0.0.1:" + server.port());
      }
      return c;
    } catch (IOException e) {
      c.close();
      throw new UncheckedIOException(e);
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
  }

  /** The shards by id, in start order. */
  Map<String, ExpertShard> shards() {
    return shards;
  }

  /** The routed-expert backend that dispatches to these shards over gRPC. */
  RemoteExperts remote() {
    return new RemoteExperts(
        ExpertPlacement.fromShardRanges(model, ranges).withVersion(1),
        ShardDirectory.of(addresses),
        channels,
        RemoteExperts.Settings.defaults());
  }

  /** The client channel to shard {@code id} (the one {@link #remote} uses). */
  ManagedChannel channel(String id) {
    return channels.get(addresses.get(id));
  }

  @Override
  public void close() {
    channels.close();
    servers.values().forEach(ExpertShardServer::close);
    shards.values().forEach(ExpertShard::close);
  }
}
