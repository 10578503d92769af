package dev.pdserve.core.cluster;

import com.hazelcast.map.EntryProcessor;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;
import dev.pdserve.core.config.NodeRole;
import java.io.IOException;
import java.util.Map;

/**
 * The registry's atomic read-modify-writes, run by Hazelcast on the partition owner of the key (one
 * at a time per key). Each is deterministic given its fields (the caller supplies the clock), so
 * running it again on the backup replica yields the same entry.
 */
final class RegistryProcessors {
  static final int REGISTER = 1;
  static final int UPDATE_LOAD = 2;
  static final int TRANSITION = 3;
  static final int REMOVE_IF_MEMBER = 4;
  static final int PUBLISH_PLACEMENT = 5;

  private RegistryProcessors() {}

  static IdentifiedDataSerializable create(int classId) {
    return switch (classId) {
      case REGISTER -> new Register();
      case UPDATE_LOAD -> new UpdateLoad();
      case TRANSITION -> new CompareAndSet();
      case REMOVE_IF_MEMBER -> new RemoveIfMember();
      case PUBLISH_PLACEMENT -> new PublishPlacement();
      default -> throw new IllegalArgumentException("unknown pdserve registry class id " + classId);
    };
  }

  private abstract static class Base<V, R>
      implements EntryProcessor<String, V, R>, IdentifiedDataSerializable {
    @Override
    public int getFactoryId() {
      return ClusterSerialization.FACTORY_ID;
    }
  }

  /**
   * Puts the entry; its epoch ends above any earlier registration of the same id (no ABA on
   * restart).
   */
  static final class Register extends Base<NodeInfo, NodeInfo> {
    private NodeInfo info;
    private long now;

    Register() {}

    Register(NodeInfo info, long now) {
      this.info = info;
      this.now = now;
    }

    @Override
    public NodeInfo process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      long epoch = old == null ? info.epoch() : Math.max(info.epoch(), old.epoch() + 1);
      NodeInfo stored = info.withRegistration(info.memberId(), epoch, now);
      entry.setValue(stored);
      return stored;
    }

    @Override
    public int getClassId() {
      return REGISTER;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeObject(info);
      out.writeLong(now);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      info = in.readObject();
      now = in.readLong();
    }
  }

  /** Replaces the load figures only; false if there is no entry. */
  static final class UpdateLoad extends Base<NodeInfo, Boolean> {
    private Load load;
    private long now;

    UpdateLoad() {}

    UpdateLoad(Load load, long now) {
      this.load = load;
      this.now = now;
    }

    @Override
    public Boolean process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (old == null) {
        return false;
      }
      entry.setValue(old.withLoad(load, now));
      return true;
    }

    @Override
    public int getClassId() {
      return UPDATE_LOAD;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeLong(load.queuedPromptTokens());
      out.writeInt(load.runningSequences());
      out.writeLong(load.kvFreeBlocks());
      out.writeLong(load.kvTotalBlocks());
      out.writeDouble(load.lastStepMillis());
      out.writeLong(now);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      load = new Load(in.readLong(), in.readInt(), in.readLong(), in.readLong(), in.readDouble());
      now = in.readLong();
    }
  }

  /** Epoch-fenced role/state change. */
  static final class CompareAndSet extends Base<NodeInfo, Transition> {
    private long expectedEpoch;
    private NodeState expectedState; // null = any
    private NodeRole newRole; // null = unchanged
    private NodeState newState;
    private long now;

    CompareAndSet() {}

    CompareAndSet(
        long expectedEpoch,
        NodeState expectedState,
        NodeRole newRole,
        NodeState newState,
        long now) {
      this.expectedEpoch = expectedEpoch;
      this.expectedState = expectedState;
      this.newRole = newRole;
      this.newState = newState;
      this.now = now;
    }

    @Override
    public Transition process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (old == null) {
        return new Transition(Transition.Outcome.NOT_FOUND, null);
      }
      if (old.epoch() != expectedEpoch) {
        return new Transition(Transition.Outcome.STALE_EPOCH, old);
      }
      if (expectedState != null && old.state() != expectedState) {
        return new Transition(Transition.Outcome.WRONG_STATE, old);
      }
      NodeInfo next =
          old.withTransition(
              newRole == null ? old.role() : newRole, newState, old.epoch() + 1, now);
      entry.setValue(next);
      return new Transition(Transition.Outcome.APPLIED, next);
    }

    @Override
    public int getClassId() {
      return TRANSITION;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeLong(expectedEpoch);
      out.writeString(expectedState == null ? null : expectedState.name());
      out.writeString(newRole == null ? null : newRole.name());
      out.writeString(newState.name());
      out.writeLong(now);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      expectedEpoch = in.readLong();
      String s = in.readString();
      expectedState = s == null ? null : NodeState.valueOf(s);
      String r = in.readString();
      newRole = r == null ? null : NodeRole.valueOf(r);
      newState = NodeState.valueOf(in.readString());
      now = in.readLong();
    }
  }

  /** Removes the entry if it still belongs to the given (departed) member. */
  static final class RemoveIfMember extends Base<NodeInfo, Boolean> {
    private String memberId;

    RemoveIfMember() {}

    RemoveIfMember(String memberId) {
      this.memberId = memberId;
    }

    @Override
    public Boolean process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (old == null || !old.memberId().equals(memberId)) {
        return false;
      }
      entry.setValue(null);
      return true;
    }

    @Override
    public int getClassId() {
      return REMOVE_IF_MEMBER;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeString(memberId);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      memberId = in.readString();
    }
  }

  /** Stores the placement iff its version is the stored version + 1 (absent = version 0). */
  static final class PublishPlacement extends Base<ExpertPlacement, Boolean> {
    private ExpertPlacement placement;

    PublishPlacement() {}

    PublishPlacement(ExpertPlacement placement) {
      this.placement = placement;
    }

    @Override
    public Boolean process(Map.Entry<String, ExpertPlacement> entry) {
      ExpertPlacement old = entry.getValue();
      long current = old == null ? 0 : old.version();
      if (placement.version() != current + 1) {
        return false;
      }
      entry.setValue(placement);
      return true;
    }

    @Override
    public int getClassId() {
      return PUBLISH_PLACEMENT;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeObject(placement);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      placement = in.readObject();
    }
  }
}
