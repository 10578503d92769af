package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;

/** DIRECT-encoded pushes read by Flight's own FlightStream: the encoder writes real Flight. */
class KvTransferDirectSendToFlightStreamTest extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.FLIGHT_STREAM);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.DIRECT);
  }
}
