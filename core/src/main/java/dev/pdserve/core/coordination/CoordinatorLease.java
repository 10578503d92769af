package dev.pdserve.core.coordination;

import com.hazelcast.nio.serialization.compact.CompactReader;
import com.hazelcast.nio.serialization.compact.CompactSerializer;
import com.hazelcast.nio.serialization.compact.CompactWriter;
import java.util.Objects;

/**
 * Who coordinates the cluster now: one entry in the registry (map {@link
 * CoordinatorLeaseStore#MAP_NAME}), written by the coordinator when it takes over. The term goes up
 * by one with every new holder, so status output and logs tell successive coordinators apart.
 *
 * @param nodeId the coordinating node
 * @param memberId its Hazelcast member UUID
 * @param term 1 for the first coordinator, then one more per takeover
 * @param sinceMillis wall-clock time of the takeover
 */
public record CoordinatorLease(String nodeId, String memberId, long term, long sinceMillis) {
  public CoordinatorLease {
    Objects.requireNonNull(nodeId, "nodeId");
    Objects.requireNonNull(memberId, "memberId");
  }

  /**
   * Compact serializer (type {@code pdserve.CoordinatorLease}); registered by {@code
   * ClusterSerialization}.
   */
  public static final class Serializer implements CompactSerializer<CoordinatorLease> {
    @Override
    public CoordinatorLease read(CompactReader in) {
      return new CoordinatorLease(
          in.readString("nodeId"),
          in.readString("memberId"),
          in.readInt64("term"),
          in.readInt64("sinceMillis"));
    }

    @Override
    public void write(CompactWriter out, CoordinatorLease l) {
      out.writeString("nodeId", l.nodeId());
      out.writeString("memberId", l.memberId());
      out.writeInt64("term", l.term());
      out.writeInt64("sinceMillis", l.sinceMillis());
    }

    @Override
    public String getTypeName() {
      return "pdserve.CoordinatorLease";
    }

    @Override
    public Class<CoordinatorLease> getCompactClass() {
      return CoordinatorLease.class;
    }
  }
}
