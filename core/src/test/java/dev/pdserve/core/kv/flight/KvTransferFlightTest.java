package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;

/** The KV transfer contract over Flight's own client and FlightStream receive. */
class KvTransferFlightTest extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.FLIGHT_STREAM);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.FLIGHT_CLIENT);
  }
}
