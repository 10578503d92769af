package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;

/** Flight's own client read by the DIRECT receiver: the parser reads real Flight. */
class KvTransferFlightClientToDirectTest extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.DIRECT);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.FLIGHT_CLIENT);
  }
}
