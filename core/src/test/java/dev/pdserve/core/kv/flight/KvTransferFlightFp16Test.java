package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;
import dev.pdserve.model.config.KvDtype;

/**
 * The KV transfer contract for a 2-byte (fp16) layout over arrow-java's Flight client and Flight
 * stream receive.
 */
class KvTransferFlightFp16Test extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.FLIGHT_STREAM);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.FLIGHT_CLIENT);
  }

  @Override
  KvDtype dtype() {
    return KvDtype.FP16;
  }
}
