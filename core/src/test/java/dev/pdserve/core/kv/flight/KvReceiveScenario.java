package dev.pdserve.core.kv.flight;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.common.util.concurrent.MoreExecutors;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.model.config.KvDtype;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.RootAllocator;

/**
 * A decode node's side of one KV transfer on the DIRECT receive path, with the checks the fuzz test
 * asserts: a pool whose every block holds a canary pattern, one transfer expected into some of its
 * blocks, DoPut calls on {@link DirectPut}'s service, and after them: every call ended once, with
 * an acknowledgement or a sender's error (never INTERNAL); no block outside the transfer changed;
 * nothing changed once the transfer left OPEN; all memory returned on {@link #close()}.
 */
final class KvReceiveScenario implements AutoCloseable {
  /** Small enough for thousands of runs a second: 2 layers, 4 slots a block, 64-byte rows. */
  static final KvLayout LAYOUT = new KvLayout(4, 2, 1, 2, KvDtype.FP32);

  static final int POOL_BLOCKS = 6;
  static final String TRANSFER = "fuzz-transfer";

  /** How a DoPut may end: acknowledged, or refused for what the sender sent. */
  private static final Set<Status.Code> SENDER_ERRORS =
      EnumSet.of(Status.Code.INVALID_ARGUMENT, Status.Code.NOT_FOUND, Status.Code.CANCELLED);

  private final RootAllocator root = new RootAllocator();
  private final ExecutorService noThreads = MoreExecutors.newDirectExecutorService();
  private final KvBlockPool pool = new KvBlockPool(root, LAYOUT, POOL_BLOCKS * LAYOUT.blockBytes());
  private final ArrowBuf scratch = root.buffer(LAYOUT.layerBytes());
  private final int[] all = pool.allocate(POOL_BLOCKS);
  private final KvReceiver receiver = new KvReceiver(pool, noThreads);
  private final ServerServiceDefinition service;
  private final IncomingTransfer transfer;
  private final int[] transferBlocks; // the pool blocks the transfer may write
  private final Map<Integer, byte[]> frozen = new HashMap<>(); // once not OPEN: block -> contents
  private boolean closed;

  /**
   * @param blocks pool blocks (0..{@link #POOL_BLOCKS}-1, distinct) in position order
   * @param tokens positions the transfer fills (1..blocks × block size)
   */
  KvReceiveScenario(int[] blocks, int tokens) {
    for (int b : all) {
      for (int l = 0; l < LAYOUT.layers(); l++) {
        pool.writeLayerBytes(b, l, 0, ByteBuffer.wrap(canary(b, l)));
      }
    }
    this.service = DirectPut.service(root, new NoOpFlightProducer(), noThreads, receiver);
    this.transfer = receiver.expect(TRANSFER, blocks, tokens);
    this.transferBlocks = Arrays.copyOf(blocks, LAYOUT.blocksFor(tokens));
  }

  IncomingTransfer transfer() {
    return transfer;
  }

  KvBlockPool pool() {
    return pool;
  }

  /** Stops the transfer, as the decode node does when its request goes away. */
  void cancel() {
    receiver.cancel(TRANSFER);
    freezeIfOver();
  }

  /** A new DoPut on the server. */
  DoPutCall call() {
    return new DoPutCall(service);
  }

  /**
   * Checks {@code call} after the sender finished it: one close, with an acknowledgement of the
   * layers held or a sender's error; and the pool.
   */
  void checkEnded(DoPutCall call, String what) {
    call.halfClose();
    assertEquals(1, call.closes().size(), "a DoPut must end exactly once; " + what);
    Status s = call.closes().get(0);
    if (s.isOk()) {
      assertEquals(1, call.results().size(), "an acknowledged DoPut sends one result; " + what);
      int[] ack = KvWire.parseAck(call.results().get(0).getAppMetadata().asReadOnlyByteBuffer());
      assertTrue(ack != null, "the acknowledgement is two int32s; " + what);
      assertEquals(LAYOUT.layers(), ack[1], "layers expected in the acknowledgement; " + what);
      assertTrue(
          ack[0] >= 0 && ack[0] <= LAYOUT.layers(),
          "layers done " + ack[0] + " in the acknowledgement; " + what);
    } else if (!SENDER_ERRORS.contains(s.getCode())) {
      fail("DoPut ended with " + s + " (not a sender's error); " + what, s.getCause());
    }
    checkPool(what);
    freezeIfOver();
  }

  /** No block outside the transfer changed, and nothing changed since the transfer ended. */
  void checkPool(String what) {
    for (int b : all) {
      if (isTransferBlock(b)) {
        byte[] then = frozen.get(b);
        if (then != null && !Arrays.equals(then, contents(b))) {
          fail(
              "block "
                  + b
                  + " changed after the transfer became "
                  + transfer.state()
                  + "; "
                  + what);
        }
        continue;
      }
      for (int l = 0; l < LAYOUT.layers(); l++) {
        if (!Arrays.equals(canary(b, l), layer(b, l))) {
          fail(
              "block "
                  + b
                  + " layer "
                  + l
                  + " is outside the transfer (blocks "
                  + Arrays.toString(transferBlocks)
                  + ") but was written; "
                  + what);
        }
      }
    }
    if (transfer.state() == IncomingTransfer.State.COMPLETE) {
      assertEquals(LAYOUT.layers(), transfer.layersReceived(), "a complete transfer's layers");
    }
  }

  /** The bytes of {@code layer} of pool block {@code block}. */
  byte[] layer(int block, int layer) {
    pool.copyLayerOut(block, layer, scratch, 0);
    byte[] out = new byte[LAYOUT.layerBytes()];
    scratch.getBytes(0, out);
    return out;
  }

  /** What a pool block holds before anything is received: a pattern no sent row repeats. */
  static byte[] canary(int block, int layer) {
    byte[] c = new byte[LAYOUT.layerBytes()];
    for (int i = 0; i < c.length; i++) {
      c[i] = (byte) (0x5a + 17 * block + 5 * layer + 3 * i);
    }
    return c;
  }

  private boolean isTransferBlock(int b) {
    for (int t : transferBlocks) {
      if (t == b) {
        return true;
      }
    }
    return false;
  }

  private byte[] contents(int block) {
    byte[] out = new byte[LAYOUT.blockBytes()];
    for (int l = 0; l < LAYOUT.layers(); l++) {
      System.arraycopy(layer(block, l), 0, out, l * LAYOUT.layerBytes(), LAYOUT.layerBytes());
    }
    return out;
  }

  private void freezeIfOver() {
    if (transfer.state() != IncomingTransfer.State.OPEN && frozen.isEmpty()) {
      for (int b : transferBlocks) {
        frozen.put(b, contents(b));
      }
    }
  }

  /** Fails what is pending, frees the pool and checks the allocator holds nothing any more. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    receiver.closeAll();
    pool.free(all);
    pool.close();
    scratch.close();
    noThreads.shutdown();
    if (root.getAllocatedMemory() != 0) {
      fail(
          "bytes still allocated after the pool and the receiver closed: "
              + root.toVerboseString());
    }
    root.close();
  }

  /** A descriptor naming this scenario's transfer. */
  static Flight.FlightDescriptor descriptor() {
    return KvFlightData.command(TRANSFER);
  }
}
