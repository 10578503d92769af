package dev.pdserve.core.cluster;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.HazelcastInstanceAware;
import com.hazelcast.map.EntryProcessor;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;
import dev.pdserve.core.config.NodeRole;
import java.io.IOException;
import java.util.Map;

/**
 * The registry's atomic read-modify-writes, run by Hazelcast on the partition owner of the key (one
 * at a time per key).
 *
 * <p>Fencing: every node-entry write names its writer (the Hazelcast member UUID of the process
 * that sends it), and the processor refuses it unless that writer is in the partition owner's
 * member list ({@link Liveness}). A member the cluster has given up — crashed, or frozen past the
 * heartbeat bound and not yet rejoined under a new UUID — therefore cannot register, update,
 * transition or remove anything; and no writer may remove the entries of a member that is still in
 * the list. Whatever a processor changed on the primary is copied to the backup as the resulting
 * value ({@link SetValue}), so the backup never re-decides with a different member list.
 */
final class RegistryProcessors {
  static final int REGISTER = 1;
  static final int UPDATE_LOAD = 2;
  static final int TRANSITION = 3;
  static final int REMOVE_IF_MEMBER = 4;
  static final int PUBLISH_PLACEMENT = 5;
  static final int SET_VALUE = 6;

  private RegistryProcessors() {}

  static IdentifiedDataSerializable create(int classId) {
    return switch (classId) {
      case REGISTER -> new Register();
      case UPDATE_LOAD -> new UpdateLoad();
      case TRANSITION -> new CompareAndSet();
      case REMOVE_IF_MEMBER -> new RemoveIfMember();
      case PUBLISH_PLACEMENT -> new PublishPlacement();
      case SET_VALUE -> new SetValue();
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
   * A fenced write on a node entry: checks the writer against the owner's member list and copies
   * the primary's result to the backup.
   */
  private abstract static class Fenced<R> extends Base<NodeInfo, R>
      implements HazelcastInstanceAware {
    private transient HazelcastInstance hz;
    private transient boolean changed;
    private transient NodeInfo result;

    @Override
    public void setHazelcastInstance(HazelcastInstance hazelcastInstance) {
      this.hz = hazelcastInstance;
    }

    /** Whether {@code memberId} is a live member (true when run outside a member, in tests). */
    final boolean live(String memberId) {
      return hz == null || Liveness.isMember(hz, memberId);
    }

    final void store(Map.Entry<String, NodeInfo> entry, NodeInfo value) {
      entry.setValue(value);
      changed = true;
      result = value;
    }

    @Override
    public final EntryProcessor<String, NodeInfo, R> getBackupProcessor() {
      @SuppressWarnings("unchecked")
      EntryProcessor<String, NodeInfo, R> backup =
          changed ? (EntryProcessor<String, NodeInfo, R>) new SetValue(result) : null;
      return backup;
    }
  }

  /**
   * Puts the entry; its epoch ends above any earlier registration of the same id (no ABA on
   * restart). Refused (the stored entry, or null, is returned unchanged) when the writer — the
   * entry's member id — is not a live member.
   */
  static final class Register extends Fenced<NodeInfo> {
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
      if (!live(info.memberId())) {
        return old;
      }
      long epoch = old == null ? info.epoch() : Math.max(info.epoch(), old.epoch() + 1);
      NodeInfo stored = info.withRegistration(info.memberId(), epoch, now);
      store(entry, stored);
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

  /**
   * Replaces the load figures only; false if there is no entry, if the writer is not a live member,
   * or if the entry belongs to a member that is gone (its node must register again under its new
   * member id, as a node that rejoined after a freeze does).
   */
  static final class UpdateLoad extends Fenced<Boolean> {
    private Load load;
    private String writer;
    private long now;

    UpdateLoad() {}

    UpdateLoad(Load load, String writer, long now) {
      this.load = load;
      this.writer = writer;
      this.now = now;
    }

    @Override
    public Boolean process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (old == null
          || !live(writer)
          || (!old.memberId().equals(writer) && !live(old.memberId()))) {
        return false;
      }
      store(entry, old.withLoad(load, now));
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
      out.writeString(writer);
      out.writeLong(now);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      load = new Load(in.readLong(), in.readInt(), in.readLong(), in.readLong(), in.readDouble());
      writer = in.readString();
      now = in.readLong();
    }
  }

  /** Epoch-fenced role/state change, refused ({@code FENCED}) from a member that is not live. */
  static final class CompareAndSet extends Fenced<Transition> {
    private long expectedEpoch;
    private NodeState expectedState; // null = any
    private NodeRole newRole; // null = unchanged
    private NodeState newState;
    private String writer;
    private long now;

    CompareAndSet() {}

    CompareAndSet(
        long expectedEpoch,
        NodeState expectedState,
        NodeRole newRole,
        NodeState newState,
        String writer,
        long now) {
      this.expectedEpoch = expectedEpoch;
      this.expectedState = expectedState;
      this.newRole = newRole;
      this.newState = newState;
      this.writer = writer;
      this.now = now;
    }

    @Override
    public Transition process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (!live(writer)) {
        return new Transition(Transition.Outcome.FENCED, old);
      }
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
      store(entry, next);
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
      out.writeString(writer);
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
      writer = in.readString();
      now = in.readLong();
    }
  }

  /**
   * Removes the entry if it still belongs to the given departed member — never while that member is
   * live (a frozen node that woke up believing the others dead cannot remove their entries), and
   * only for a live writer.
   */
  static final class RemoveIfMember extends Fenced<Boolean> {
    private String memberId;
    private String writer;

    RemoveIfMember() {}

    RemoveIfMember(String memberId, String writer) {
      this.memberId = memberId;
      this.writer = writer;
    }

    @Override
    public Boolean process(Map.Entry<String, NodeInfo> entry) {
      NodeInfo old = entry.getValue();
      if (old == null
          || !old.memberId().equals(memberId)
          || !live(writer)
          || (live(memberId) && !memberId.equals(writer))) {
        return false;
      }
      store(entry, null);
      return true;
    }

    @Override
    public int getClassId() {
      return REMOVE_IF_MEMBER;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeString(memberId);
      out.writeString(writer);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      memberId = in.readString();
      writer = in.readString();
    }
  }

  /** The backup side of a {@link Fenced} write: stores the primary's result (null removes). */
  static final class SetValue extends Base<NodeInfo, Object> {
    private NodeInfo value;

    SetValue() {}

    SetValue(NodeInfo value) {
      this.value = value;
    }

    @Override
    public Object process(Map.Entry<String, NodeInfo> entry) {
      entry.setValue(value);
      return null;
    }

    @Override
    public int getClassId() {
      return SET_VALUE;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeObject(value);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      value = in.readObject();
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
