package dev.pdserve.core.kv.flight;

import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.kv.KvBlockPool;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightStream;
import org.apache.arrow.flight.NoOpFlightProducer;
import org.apache.arrow.flight.PutResult;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The decode node's Flight producer: DoPut through Flight's own {@link FlightStream}, which reads
 * each batch into Arrow memory first; each row is then copied into its block. The portable receive
 * path ({@link KvTransferServer.ReceivePath#FLIGHT_STREAM}).
 */
final class KvPutProducer extends NoOpFlightProducer {
  private static final Logger LOG = LogManager.getLogger(KvPutProducer.class);

  private final KvReceiver receiver;
  private final BufferAllocator allocator;

  KvPutProducer(KvReceiver receiver, BufferAllocator allocator) {
    this.receiver = receiver;
    this.allocator = allocator;
  }

  @Override
  public Runnable acceptPut(
      CallContext context, FlightStream stream, StreamListener<PutResult> ack) {
    return () -> {
      String id = null;
      try {
        id = KvWire.transferId(stream.getDescriptor());
        IncomingTransfer t = receiver.lookup(id);
        if (t != null) {
          receive(t, stream);
        } else {
          while (stream.next()) {
            // a late retry of a completed transfer: acknowledge, write nothing
          }
        }
        byte[] msg = receiver.ack(t);
        try (ArrowBuf buf = allocator.buffer(msg.length)) {
          buf.writeBytes(msg);
          ack.onNext(PutResult.metadata(buf));
        }
        ack.onCompleted();
      } catch (KvTransferException e) {
        ack.onError(e.toFlight());
      } catch (RuntimeException e) {
        LOG.error("KV transfer '{}' failed on the receiving side", id, e);
        ack.onError(
            CallStatus.INTERNAL
                .withDescription("KV transfer '" + id + "': " + GrpcErrors.describe(e))
                .withCause(e)
                .toRuntimeException());
      }
    };
  }

  private void receive(IncomingTransfer t, FlightStream stream) {
    receiver.checkSchema(t, stream.getSchema());
    KvBlockPool pool = receiver.pool();
    VectorSchemaRoot root = stream.getRoot();
    IntVector layers = (IntVector) root.getVector(KvWire.LAYER);
    IntVector blocks = (IntVector) root.getVector(KvWire.BLOCK);
    IntVector tokens = (IntVector) root.getVector(KvWire.TOKENS);
    FixedSizeBinaryVector kv = (FixedSizeBinaryVector) root.getVector(KvWire.KV);
    long rowBytes = receiver.layout().layerBytes();
    while (stream.next()) {
      int rows = root.getRowCount();
      if (layers.getNullCount() + blocks.getNullCount() + tokens.getNullCount() + kv.getNullCount()
          > 0) {
        throw receiver.fail(t, "KV rows must not hold nulls");
      }
      ArrowBuf data = kv.getDataBuffer();
      if (data.capacity() < rows * rowBytes) {
        throw receiver.fail(
            t,
            "a KV batch of "
                + rows
                + " rows carries "
                + data.capacity()
                + " bytes, expected "
                + rows * rowBytes);
      }
      for (int r = 0; r < rows; r++) {
        int layer = layers.get(r);
        int block = blocks.get(r);
        receiver.checkRow(t, layer, block, tokens.get(r));
        long at = r * rowBytes;
        receiver.checkOutcome(
            t,
            t.write(
                layer,
                block,
                tokens.get(r),
                (poolBlock, l) -> pool.copyLayerIn(poolBlock, l, data, at)));
      }
    }
  }
}
