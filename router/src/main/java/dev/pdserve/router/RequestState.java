package dev.pdserve.router;

/**
 * Where a request in flight ({@link InFlightRequest}) is in its run. Each transition has one owner,
 * the only code that makes it; transitions are made under the request's lock, and one that finds
 * the request {@link #FINISHED} is refused, so its owner undoes what it started (releases a
 * reservation just granted, cancels a call just opened).
 *
 * <pre>
 *   QUEUED ──▶ RESERVING ──▶ PREFILLING ──▶ DECODING ◀──▶ MIGRATING
 *                  ▲              │             │
 *                  └──────────────┴─────────────┘  (its prefill or decode node was lost)
 *
 *   any of them ──▶ FINISHED
 * </pre>
 *
 * <ul>
 *   <li>QUEUED → RESERVING: {@link RequestRunner#start}, when {@link Admission} gives the request a
 *       slot (at once, or when a running one ends).
 *   <li>RESERVING → PREFILLING: {@link RequestRunner}, when a decode node granted a KV reservation.
 *   <li>PREFILLING → RESERVING: {@link RequestRunner}, when the prefill failed with UNAVAILABLE and
 *       the KV is computed again (the reservation is released, a fresh one made, another prefill
 *       node asked).
 *   <li>PREFILLING → DECODING and MIGRATING → DECODING: {@link DecodeStreamFollower}, opening a
 *       decode stream (after the prefill node's first token, straight away for a local prefill, on
 *       the node a migration moved the sequence to, or resuming after a decode node was lost).
 *   <li>DECODING → MIGRATING: {@link DecodeStreamFollower}, when the stream says the sequence
 *       moved.
 *   <li>DECODING → RESERVING: {@link DecodeStreamFollower}, when the decode node was lost (its
 *       stream failed with UNAVAILABLE, or the {@link StreamWatchdog} found it silent): a new
 *       reservation elsewhere, a prefill of the prompt plus the tokens delivered so far, then
 *       DECODING again with a resumed stream; the follower's de-duplication by token index keeps
 *       the client's stream exact.
 *   <li>any → FINISHED: {@link RequestOutcomes}, exactly once per request (a completion, an error,
 *       a cancellation); it stops what the state held.
 * </ul>
 */
public enum RequestState {
  /** Admitted, waiting in the router's queue for a running slot. Holds nothing. */
  QUEUED,
  /**
   * Asking decode nodes, one after another, for a KV reservation (again, after a prefill or decode
   * node was lost). Holds the slot.
   */
  RESERVING,
  /**
   * A KV reservation is held (the router releases it if the request ends here); a prefill node is
   * computing the prompt's KV into it. A local prefill passes straight through to DECODING.
   */
  PREFILLING,
  /** A decode stream is open; it owns the reservation (ending the request cancels the stream). */
  DECODING,
  /**
   * The decode node moved the sequence away; the router holds the reservation on the target (and
   * releases it if the request ends here) until the resumed stream there is open.
   */
  MIGRATING,
  /** Ended with one completion or one error (or cancelled: nothing more sent). Terminal. */
  FINISHED
}
