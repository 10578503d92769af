package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.kv.InMemoryKvTransfer;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.config.ModelPresets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CancellationException;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The reservation ledger alone, over a real KV pool and an in-memory KV intake, its time driven by
 * a {@link FakeTicker}: no model, no threads, no waiting.
 */
class ReservationTableTest {
  static final Duration TRANSFER_TIMEOUT = Duration.ofSeconds(5);
  static final Duration TTL = Duration.ofSeconds(30);
  static final Duration LEASE = Duration.ofSeconds(10);
  static final int BLOCKS = 64;

  RootAllocator allocator;
  KvBlockPool pool;
  InMemoryKvTransfer intake;
  FakeTicker ticker;
  ReservationTable table;
  int blockSize;

  @BeforeEach
  void start() {
    allocator = new RootAllocator();
    KvLayout layout = KvLayout.of(ModelPresets.get("tiny"));
    blockSize = layout.blockSize();
    pool = new KvBlockPool(allocator, layout, BLOCKS * layout.blockBytes());
    intake = new InMemoryKvTransfer(pool);
    ticker = new FakeTicker();
    table =
        new ReservationTable(
            pool, intake, new DecodeOptions(8, TRANSFER_TIMEOUT, TTL, LEASE), ticker, "d0");
  }

  @AfterEach
  void stop() {
    table.freeAll();
    assertEquals(
        pool.totalBlocks(), pool.freeBlocks(), "every KV block must be free after the test");
    assertEquals(0, table.reservedBlocks(), "the reserved-blocks count must be back to 0");
    assertEquals(0, intake.pending(), "no transfer may stay expected");
    pool.close();
    allocator.close(); // fails if any Arrow memory leaked
  }

  @Test
  void aReservationTakesBlocksForPromptAndMaxTokensAndExpectsItsKv() {
    Reservation r = table.reserve("r1", 40, 20);
    assertEquals(pool.layout().blocksFor(60), r.blocks().length, "blocks for 40 + 20 tokens");
    assertTrue(
        r.transferId().startsWith("r1/"), "transfer id names the request: " + r.transferId());
    assertEquals(pool.totalBlocks() - r.blocks().length, pool.freeBlocks());
    assertEquals(r.blocks().length, table.reservedBlocks());
    assertEquals(1, intake.pending(), "the KV transfer into the blocks is expected");
    assertEquals(1, table.size());
  }

  @Test
  void releaseFreesAnUnusedReservationOnce() {
    Reservation r = table.reserve("r1", 40, 20);
    assertTrue(table.release(r.transferId()));
    assertEquals(pool.totalBlocks(), pool.freeBlocks());
    assertEquals(1, intake.cancelled(), "its transfer is cancelled, so nothing writes the blocks");
    assertFalse(table.release(r.transferId()), "a second release finds nothing");
    assertFalse(table.release("no-such-transfer"));
  }

  @Test
  void aFullPoolRefusesWithResourceExhaustedAndSaysHowFull() {
    table.reserve("all", BLOCKS * blockSize - 1, 1);
    assertEquals(0, pool.freeBlocks());
    assertRefused(
        ServingException.Kind.RESOURCE_EXHAUSTED,
        "decode KV pool is full (0 of 64 blocks free, 1 needed); retry shortly",
        () -> table.reserve("one-more", 1, 1));
  }

  @Test
  void aRequestLargerThanThePoolIsRefusedWithItsSize() {
    int tokens = BLOCKS * blockSize + 1;
    assertRefused(
        ServingException.Kind.RESOURCE_EXHAUSTED,
        "request needs 65 KV blocks ("
            + tokens
            + " tokens) but this decode node's pool holds only 64; lower max_tokens or shorten the prompt",
        () -> table.reserve("huge", tokens - 1, 1));
    assertEquals(pool.totalBlocks(), pool.freeBlocks(), "nothing was taken from the pool");
  }

  @Test
  void badSizesAreInvalidArgument() {
    assertRefused(
        ServingException.Kind.INVALID_ARGUMENT,
        "reserve needs prompt_tokens >= 1 and max_tokens >= 1, got 0 and 5",
        () -> table.reserve("r", 0, 5));
  }

  @Test
  void aTableNotAcceptingOrClosedRefusesWithUnavailable() {
    table.setAccepting(false);
    assertRefused(
        ServingException.Kind.UNAVAILABLE,
        "this node is not taking decode work (draining or serving the prefill role); choose another decode node",
        () -> table.reserve("r", 1, 1));
    table.setAccepting(true);
    table.close();
    assertRefused(
        ServingException.Kind.UNAVAILABLE,
        "decode node is shutting down",
        () -> table.reserve("r", 1, 1));
  }

  @Test
  void aJoinIsCheckedAgainstItsReservation() {
    Reservation r = table.reserve("r1", 3, 4);
    assertRefused(
        ServingException.Kind.NOT_FOUND,
        "no KV reservation nope on this decode node (expired or released)",
        () -> table.join(join("r1", "nope", 3), null, new RecordingSink()));
    assertRefused(
        ServingException.Kind.INVALID_ARGUMENT,
        "reservation " + r.transferId() + " belongs to request r1",
        () -> table.join(join("other", r.transferId(), 3), null, new RecordingSink()));
    assertRefused(
        ServingException.Kind.INVALID_ARGUMENT,
        "request r1 has 5 KV positions (prompt 5); its reservation is for 3",
        () -> table.join(join("r1", r.transferId(), 5), null, new RecordingSink()));
    assertRefused(
        ServingException.Kind.INVALID_ARGUMENT,
        "request r1 has 4 KV positions (prompt 2 + 2 generated); its reservation is for 3",
        () -> table.join(join("r1", r.transferId(), 2), new int[] {7, 8, 9}, new RecordingSink()));

    DecodeSequence s =
        table.join(join("r1", r.transferId(), 2), new int[] {7, 8}, new RecordingSink());
    assertTrue(s.joined());
    assertSame(s, table.joined("r1").orElseThrow(), "a joined request is found by its id");
    assertRefused(
        ServingException.Kind.ALREADY_EXISTS,
        "request r1 already joined",
        () -> table.join(join("r1", r.transferId(), 3), null, new RecordingSink()));
    assertFalse(table.release(r.transferId()), "a joined reservation is not released");
    table.free(s);
    assertTrue(table.joined("r1").isEmpty(), "a freed request is gone");
    assertEquals(1, table.sequencesEnded(), "a joined sequence freed here ended here");
  }

  @Test
  void anUnrenewedLeaseFreesItsReservationWhenItRunsOut() {
    Reservation r = table.reserve("orphan", 30, 10);
    ticker.advance(LEASE);
    table.sweep();
    assertEquals(1, table.size(), "a lease lasts its whole length");
    ticker.advance(1);
    table.sweep();
    assertEquals(0, table.size(), "past its lease the reservation is freed");
    assertEquals(1, table.leasesExpired());
    assertEquals(List.of(r.transferId()), table.renewLeases(List.of(r.transferId())));
  }

  @Test
  void renewingALeaseKeepsTheReservationPastManyLeases() {
    Reservation r = table.reserve("kept", 3, 10);
    // decoding (joined, its KV here), so neither its time to live nor a KV wait is in play
    table.join(join("kept", r.transferId(), 3), null, new RecordingSink()).kvArrived = true;
    for (int i = 0; i < 10; i++) {
      ticker.advance(LEASE.multipliedBy(2).dividedBy(3));
      assertEquals(List.of(), table.renewLeases(List.of(r.transferId())), "a live one is known");
      table.sweep();
    }
    assertEquals(0, table.leasesExpired(), "a renewed lease never runs out");
    assertEquals(1, table.size());
    assertEquals(
        List.of("gone"),
        table.renewLeases(List.of(r.transferId(), "gone")),
        "unknown ids come back");
  }

  @Test
  void aJoinedRequestWhoseLeaseRunsOutIsCancelledForTheDecodeLoopToEnd() {
    Reservation r = table.reserve("joined", 3, 4);
    DecodeSequence s = table.join(join("joined", r.transferId(), 3), null, new RecordingSink());
    ticker.advance(LEASE.plusNanos(1));
    assertTrue(table.sweep(), "the sweep says it cancelled a joined request");
    assertTrue(s.cancelled);
    assertEquals(1, intake.cancelled(), "its KV transfer is cancelled");
    assertEquals(1, table.size(), "the decode loop frees it, not the sweep");
    assertFalse(table.sweep(), "a cancelled request is not cancelled again");
    assertEquals(1, table.leasesExpired());
  }

  @Test
  void aReservationNobodyJoinsIsFreedAfterItsTimeToLive() {
    Reservation unjoined = table.reserve("unjoined", 30, 10);
    Reservation joined = table.reserve("joined", 3, 4);
    DecodeSequence j =
        table.join(join("joined", joined.transferId(), 3), null, new RecordingSink());
    j.kvArrived = true; // decoding: no KV wait either
    List<String> both = List.of(unjoined.transferId(), joined.transferId());
    Duration step = LEASE.dividedBy(2); // renewed every half lease: no lease runs out
    for (Duration d = step; d.compareTo(TTL) <= 0; d = d.plus(step)) {
      ticker.advance(step);
      table.renewLeases(both);
      table.sweep();
    }
    assertEquals(2, table.size(), "a reservation lives its whole time to live");
    ticker.advance(1);
    table.renewLeases(both);
    table.sweep();
    assertEquals(
        List.of(unjoined.transferId()),
        table.renewLeases(both),
        "past its time to live the unjoined reservation is freed");
    assertTrue(table.joined("joined").isPresent(), "a joined one has no time to live");
    assertEquals(0, table.leasesExpired(), "no lease ran out");
  }

  @Test
  void aJoinWhoseKvDoesNotArriveWithinTheTransferTimeoutIsMarkedLateAndItsTransferCancelled() {
    Reservation r = table.reserve("late", 3, 4);
    DecodeSequence s = table.join(join("late", r.transferId(), 3), null, new RecordingSink());
    ticker.advance(TRANSFER_TIMEOUT);
    table.sweep();
    assertFalse(s.kvLate, "the KV may take the whole transfer timeout");
    assertFalse(s.expectedKv.completion().isDone());
    ticker.advance(1);
    assertFalse(table.sweep(), "a late transfer is no lease expiry");
    assertTrue(s.kvLate, "past the transfer timeout the join is late");
    assertThrows(
        CancellationException.class,
        () -> s.expectedKv.completion().join(),
        "the KV wait fails: its transfer was cancelled");
    assertEquals(0, table.leasesExpired());
  }

  @Test
  void aLocalPrefillOrAnArrivedKvHasNoTransferTimeout() {
    Reservation local = table.reserve("local", 3, 4);
    DecodeSequence l =
        table.join(
            JoinRequest.localPrefill(
                "local", local.transferId(), new int[3], TinyModel.greedy(4), 1),
            null,
            new RecordingSink());
    Reservation arrived = table.reserve("arrived", 3, 4);
    DecodeSequence a =
        table.join(join("arrived", arrived.transferId(), 3), null, new RecordingSink());
    a.kvArrived = true;
    ticker.advance(TRANSFER_TIMEOUT.plusSeconds(1));
    table.sweep();
    assertFalse(l.kvLate, "a request prefilled here waits for no KV");
    assertFalse(a.kvLate, "a request whose KV arrived waits no more");
  }

  private static JoinRequest join(String requestId, String transferId, int promptTokens) {
    return JoinRequest.prefilled(
        requestId, transferId, new int[promptTokens], 40, 0, TinyModel.greedy(4), 1, 0);
  }

  private static void assertRefused(ServingException.Kind kind, String message, Executable call) {
    ServingException e = assertThrows(ServingException.class, call);
    assertEquals(kind, e.kind(), "kind of: " + e.getMessage());
    assertEquals(message, e.getMessage());
  }
}
