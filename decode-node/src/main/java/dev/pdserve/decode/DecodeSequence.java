package dev.pdserve.decode;

import dev.pdserve.core.kv.ExpectedKv;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.model.engine.GenerationState;
import dev.pdserve.model.engine.PrefillInputs;

/**
 * One reservation's life on a decode node: reserved → joined (waiting for its KV) → running → freed
 * ({@link ReservationTable#free}, exactly once). The volatile fields are shared between the caller
 * threads, the sweep and the decode loop; the plain ones belong to the decode loop, and to the
 * migrator once the loop handed the sequence over.
 */
final class DecodeSequence {
  final Reservation reservation;

  /** Ticker reading when it was reserved. */
  final long reservedAtNanos;

  /** Ticker reading past which the reservation is freed unless its lease is renewed. */
  volatile long leaseDeadlineNanos;

  /** The KV transfer the prefill node (or a migrating decode node) pushes into its blocks. */
  volatile ExpectedKv expectedKv;

  volatile JoinRequest join;
  volatile TokenSink sink;

  /** Ticker reading when it joined: its KV must arrive within the transfer timeout from then. */
  volatile long joinedAtNanos;

  /** Tokens generated elsewhere, when this sequence migrated in; null otherwise. */
  volatile int[] resumed;

  volatile boolean cancelled;

  /** Its KV arrived whole (it is queued for the batch, or in it). */
  volatile boolean kvArrived;

  /** Its KV did not arrive within the transfer timeout: the sweep cancelled the transfer. */
  volatile boolean kvLate;

  /** It moved to another decode node (its end here is not a finish). */
  volatile boolean migrated;

  /** A local prefill's inputs once its images are encoded (off the decode loop); else null. */
  volatile PrefillInputs inputs;

  /** 3-D rotary delta its decode steps' positions take (0 for text): set when it is admitted. */
  volatile int positionDelta;

  PagedSequenceKv kv; // decode thread
  GenerationState state; // decode thread
  int lastToken; // decode thread
  boolean pinned; // its migration failed: it finishes on this node (decode thread)
  boolean freed; // guarded by this

  DecodeSequence(Reservation reservation, long reservedAtNanos, long leaseDeadlineNanos) {
    this.reservation = reservation;
    this.reservedAtNanos = reservedAtNanos;
    this.leaseDeadlineNanos = leaseDeadlineNanos;
  }

  String transferId() {
    return reservation.transferId();
  }

  /** The id of the request it was reserved for. */
  String requestId() {
    return reservation.requestId();
  }

  int blockCount() {
    return reservation.blocks().length;
  }

  boolean joined() {
    return join != null;
  }

  /** Joined, and its KV is not in the batch yet. */
  boolean waitingForKv() {
    return join != null && kv == null;
  }
}
