package dev.pdserve.core.cluster;

import com.hazelcast.config.SerializationConfig;
import com.hazelcast.nio.serialization.compact.CompactReader;
import com.hazelcast.nio.serialization.compact.CompactSerializer;
import com.hazelcast.nio.serialization.compact.CompactWriter;
import dev.pdserve.core.cluster.ExpertPlacement.ExpertKey;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.core.coordination.CoordinatorLease;
import dev.pdserve.core.coordination.LeaseProcessors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How registry values cross process boundaries: Compact serializers (explicit, so field names and
 * types are a stable wire contract) for {@link NodeInfo}, {@link Transition} and {@link
 * ExpertPlacement}, and an IdentifiedDataSerializable factory for the registry's entry processors.
 * No Java serialization. Every member and client of a pdserve cluster applies {@link #configure}.
 */
public final class ClusterSerialization {
  /** Factory id of the registry entry processors. */
  public static final int FACTORY_ID = 0x5044; // "PD"

  private ClusterSerialization() {}

  public static void configure(SerializationConfig config) {
    config
        .getCompactSerializationConfig()
        .addSerializer(new NodeInfoSerializer())
        .addSerializer(new TransitionSerializer())
        .addSerializer(new PlacementSerializer())
        .addSerializer(new CoordinatorLease.Serializer());
    config.addDataSerializableFactory(FACTORY_ID, RegistryProcessors::create);
    config.addDataSerializableFactory(LeaseProcessors.FACTORY_ID, LeaseProcessors::create);
  }

  static final class NodeInfoSerializer implements CompactSerializer<NodeInfo> {
    @Override
    public NodeInfo read(CompactReader in) {
      Load load =
          new Load(
              in.readInt64("queuedPromptTokens"),
              in.readInt32("runningSequences"),
              in.readInt64("kvFreeBlocks"),
              in.readInt64("kvTotalBlocks"),
              in.readFloat64("lastStepMillis"));
      return new NodeInfo(
          in.readString("id"),
          NodeRole.valueOf(in.readString("role")),
          NodeState.valueOf(in.readString("state")),
          in.readInt64("epoch"),
          in.readString("memberId"),
          in.readString("grpcAddress"),
          in.readString("flightAddress"),
          in.readString("metricsUrl"),
          load,
          in.readInt64("updatedAtMillis"));
    }

    @Override
    public void write(CompactWriter out, NodeInfo n) {
      out.writeString("id", n.id());
      out.writeString("role", n.role().name());
      out.writeString("state", n.state().name());
      out.writeInt64("epoch", n.epoch());
      out.writeString("memberId", n.memberId());
      out.writeString("grpcAddress", n.grpcAddress());
      out.writeString("flightAddress", n.flightAddress());
      out.writeString("metricsUrl", n.metricsUrl());
      out.writeInt64("queuedPromptTokens", n.load().queuedPromptTokens());
      out.writeInt32("runningSequences", n.load().runningSequences());
      out.writeInt64("kvFreeBlocks", n.load().kvFreeBlocks());
      out.writeInt64("kvTotalBlocks", n.load().kvTotalBlocks());
      out.writeFloat64("lastStepMillis", n.load().lastStepMillis());
      out.writeInt64("updatedAtMillis", n.updatedAtMillis());
    }

    @Override
    public String getTypeName() {
      return "pdserve.NodeInfo";
    }

    @Override
    public Class<NodeInfo> getCompactClass() {
      return NodeInfo.class;
    }
  }

  static final class TransitionSerializer implements CompactSerializer<Transition> {
    @Override
    public Transition read(CompactReader in) {
      return new Transition(
          Transition.Outcome.valueOf(in.readString("outcome")), in.readCompact("node"));
    }

    @Override
    public void write(CompactWriter out, Transition t) {
      out.writeString("outcome", t.outcome().name());
      out.writeCompact("node", t.node());
    }

    @Override
    public String getTypeName() {
      return "pdserve.Transition";
    }

    @Override
    public Class<Transition> getCompactClass() {
      return Transition.class;
    }
  }

  /**
   * Flat columns: one row per expert (layer, group, expert, shard count), shard ids concatenated.
   */
  static final class PlacementSerializer implements CompactSerializer<ExpertPlacement> {
    @Override
    public ExpertPlacement read(CompactReader in) {
      int[] layers = in.readArrayOfInt32("layers");
      int[] groups = in.readArrayOfInt32("groups");
      int[] experts = in.readArrayOfInt32("experts");
      int[] counts = in.readArrayOfInt32("shardCounts");
      String[] ids = in.readArrayOfString("shardIds");
      Map<ExpertKey, List<String>> shards = new LinkedHashMap<>();
      int at = 0;
      for (int i = 0; i < layers.length; i++) {
        shards.put(
            new ExpertKey(layers[i], groups[i], experts[i]),
            Arrays.asList(ids).subList(at, at + counts[i]));
        at += counts[i];
      }
      return new ExpertPlacement(in.readInt64("version"), shards);
    }

    @Override
    public void write(CompactWriter out, ExpertPlacement p) {
      int n = p.shards().size();
      int[] layers = new int[n];
      int[] groups = new int[n];
      int[] experts = new int[n];
      int[] counts = new int[n];
      List<String> ids = new ArrayList<>();
      int i = 0;
      for (Map.Entry<ExpertKey, List<String>> e : p.shards().entrySet()) {
        layers[i] = e.getKey().layer();
        groups[i] = e.getKey().group();
        experts[i] = e.getKey().expert();
        counts[i] = e.getValue().size();
        ids.addAll(e.getValue());
        i++;
      }
      out.writeInt64("version", p.version());
      out.writeArrayOfInt32("layers", layers);
      out.writeArrayOfInt32("groups", groups);
      out.writeArrayOfInt32("experts", experts);
      out.writeArrayOfInt32("shardCounts", counts);
      out.writeArrayOfString("shardIds", ids.toArray(new String[0]));
    }

    @Override
    public String getTypeName() {
      return "pdserve.ExpertPlacement";
    }

    @Override
    public Class<ExpertPlacement> getCompactClass() {
      return ExpertPlacement.class;
    }
  }
}
