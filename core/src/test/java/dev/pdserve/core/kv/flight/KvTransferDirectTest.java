package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;

/** The KV transfer contract over the default paths: DIRECT send, DIRECT receive. */
class KvTransferDirectTest extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.DIRECT);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.DIRECT);
  }
}
