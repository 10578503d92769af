package dev.pdserve.expert;

import dev.pdserve.core.cluster.ExpertPlacement;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.experts.RemoteExperts;
import dev.pdserve.core.experts.ShardDirectory;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.expert.grpc.ExpertShardServer;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.weights.ModelWeights;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/** Expert shards on real Netty servers at 127.0.0.1:0, and the client channels to reach them. */
final class ShardCluster implements AutoCloseable {
  final Map<String, ExpertRange> ranges = new TreeMap<>();
  final Map<String, ExpertShard> shards = new LinkedHashMap<>();
  final Map<String, ExpertShardServer> servers = new LinkedHashMap<>();
  final Map<String, String> addresses = new TreeMap<>();
  final Channels channels = new Channels(Channels.Settings.defaults());
  private ModelConfig cfg = TinyModel.CFG;

  /** Starts one tiny-model shard per entry, e.g. {@code "shard-a" → "0-31"}. */
  static ShardCluster start(ModelWeights weights, Map<String, String> rangesById) {
    return start(weights, rangesById, TinyModel.CFG);
  }

  static ShardCluster start(
      ModelWeights weights, Map<String, String> rangesById, ModelConfig model) {
    ShardCluster c = new ShardCluster();
    c.cfg = model;
    try {
      rangesById.forEach(
          (id, range) -> {
            ExpertRange r = ExpertRange.parse(range);
            ExpertShard shard = new ExpertShard(id, r, weights, OrtRuntime.shared());
            c.ranges.put(id, r);
            c.shards.put(id, shard);
            ExpertShardServer server = ExpertShardServer.onAddress(shard, "127.0.0.1", 0);
            c.servers.put(id, server);
            try {
              server.start();
            } catch (IOException e) {
              throw new UncheckedIOException(e);
            }
            c.addresses.put(id, "127.0.0.1:" + server.port());
          });
      return c;
    } catch (RuntimeException e) {
      c.close();
      throw e;
    }
  }

  ShardDirectory directory() {
    return ShardDirectory.of(addresses);
  }

  ExpertPlacement placement(long version) {
    return ExpertPlacement.fromShardRanges(cfg, ranges).withVersion(version);
  }

  RemoteExperts remote() {
    return new RemoteExperts(
        placement(1), directory(), channels, RemoteExperts.Settings.defaults());
  }

  ExpertShard shard(String id) {
    return shards.get(id);
  }

  /** Stops one shard's server (the shard stays in the placement: a crashed node). */
  void stop(String id) {
    servers.get(id).close();
  }

  @Override
  public void close() {
    channels.close();
    servers.values().forEach(ExpertShardServer::close);
    shards.values().forEach(ExpertShard::close);
  }
}
