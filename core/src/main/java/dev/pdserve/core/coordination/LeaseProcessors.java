package dev.pdserve.core.coordination;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.core.HazelcastInstanceAware;
import com.hazelcast.map.EntryProcessor;
import com.hazelcast.nio.ObjectDataInput;
import com.hazelcast.nio.ObjectDataOutput;
import com.hazelcast.nio.serialization.IdentifiedDataSerializable;
import dev.pdserve.core.cluster.Liveness;
import java.io.IOException;
import java.util.Map;

/**
 * The coordinator lease's atomic operations, run on the partition owner of the lease entry against
 * the owner's member list: take over the lease ({@link Acquire}), check it before every action
 * ({@link Confirm}), give it up ({@link Release}).
 */
public final class LeaseProcessors {
  /** Factory id of these processors (the registry's is {@code ClusterSerialization.FACTORY_ID}). */
  public static final int FACTORY_ID = 0x5045;

  static final int ACQUIRE = 1;
  static final int CONFIRM = 2;
  static final int RELEASE = 3;
  static final int PUT = 4;

  private LeaseProcessors() {}

  public static IdentifiedDataSerializable create(int classId) {
    return switch (classId) {
      case ACQUIRE -> new Acquire();
      case CONFIRM -> new Confirm();
      case RELEASE -> new Release();
      case PUT -> new Put();
      default -> throw new IllegalArgumentException("unknown pdserve lease class id " + classId);
    };
  }

  private abstract static class Base<R>
      implements EntryProcessor<String, CoordinatorLease, R>,
          IdentifiedDataSerializable,
          HazelcastInstanceAware {
    private transient HazelcastInstance hz;
    private transient CoordinatorLease stored;
    private transient boolean changed;
    String memberId;

    @Override
    public void setHazelcastInstance(HazelcastInstance hazelcastInstance) {
      this.hz = hazelcastInstance;
    }

    void store(Map.Entry<String, CoordinatorLease> entry, CoordinatorLease value) {
      entry.setValue(value);
      stored = value;
      changed = true;
    }

    /** The backup stores what the primary decided (it never re-decides on its own member list). */
    @Override
    public EntryProcessor<String, CoordinatorLease, R> getBackupProcessor() {
      @SuppressWarnings("unchecked")
      EntryProcessor<String, CoordinatorLease, R> put =
          changed ? (EntryProcessor<String, CoordinatorLease, R>) new Put(stored) : null;
      return put;
    }

    boolean live(String member) {
      return hz == null || Liveness.isMember(hz, member);
    }

    @Override
    public int getFactoryId() {
      return FACTORY_ID;
    }
  }

  /**
   * Takes the lease with the next term unless a live member holds it; returns the lease as stored
   * (the caller leads iff it names the caller). A writer that is not a live member changes nothing.
   */
  static final class Acquire extends Base<CoordinatorLease> {
    private String nodeId;
    private long now;

    Acquire() {}

    Acquire(String nodeId, String memberId, long now) {
      this.nodeId = nodeId;
      this.memberId = memberId;
      this.now = now;
    }

    @Override
    public CoordinatorLease process(Map.Entry<String, CoordinatorLease> entry) {
      CoordinatorLease cur = entry.getValue();
      if (cur != null && cur.memberId().equals(memberId) && cur.nodeId().equals(nodeId)) {
        return cur;
      }
      if (!live(memberId) || (cur != null && live(cur.memberId()))) {
        return cur;
      }
      CoordinatorLease next =
          new CoordinatorLease(nodeId, memberId, cur == null ? 1 : cur.term() + 1, now);
      store(entry, next);
      return next;
    }

    @Override
    public int getClassId() {
      return ACQUIRE;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeString(nodeId);
      out.writeString(memberId);
      out.writeLong(now);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      nodeId = in.readString();
      memberId = in.readString();
      now = in.readLong();
    }
  }

  /**
   * True iff the lease still has this term and member and that member is live: the check before
   * each coordinator action. Read-only (no backup).
   */
  static final class Confirm extends Base<Boolean> {
    private long term;

    Confirm() {}

    Confirm(String memberId, long term) {
      this.memberId = memberId;
      this.term = term;
    }

    @Override
    public Boolean process(Map.Entry<String, CoordinatorLease> entry) {
      CoordinatorLease cur = entry.getValue();
      return cur != null && cur.term() == term && cur.memberId().equals(memberId) && live(memberId);
    }

    @Override
    public int getClassId() {
      return CONFIRM;
    }

    @Override
    public void writeData(ObjectDataOutput out) throws IOException {
      out.writeString(memberId);
      out.writeLong(term);
    }

    @Override
    public void readData(ObjectDataInput in) throws IOException {
      memberId = in.readString();
      term = in.readLong();
    }
  }

  /**
   * Gives the lease up if this member holds it (the term stays recorded: the next holder takes term
   * + 1). Keeps the entry, marked released by an empty member id.
   */
  static final class Release extends Base<Boolean> {
    Release() {}

    Release(String memberId) {
      this.memberId = memberId;
    }

    @Override
    public Boolean process(Map.Entry<String, CoordinatorLease> entry) {
      CoordinatorLease cur = entry.getValue();
      if (cur == null || !cur.memberId().equals(memberId)) {
        return false;
      }
      store(entry, new CoordinatorLease(cur.nodeId(), "", cur.term(), cur.sinceMillis()));
      return true;
    }

    @Override
    public int getClassId() {
      return RELEASE;
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

  /** The backup side of an acquire or release: stores the primary's result. */
  static final class Put
      implements EntryProcessor<String, CoordinatorLease, Object>, IdentifiedDataSerializable {
    private CoordinatorLease value;

    Put() {}

    Put(CoordinatorLease value) {
      this.value = value;
    }

    @Override
    public Object process(Map.Entry<String, CoordinatorLease> entry) {
      entry.setValue(value);
      return null;
    }

    @Override
    public int getFactoryId() {
      return FACTORY_ID;
    }

    @Override
    public int getClassId() {
      return PUT;
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
}
