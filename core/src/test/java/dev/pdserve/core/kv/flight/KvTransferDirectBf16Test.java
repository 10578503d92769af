package dev.pdserve.core.kv.flight;

import dev.pdserve.core.kv.flight.KvTransferClient.SendPath;
import dev.pdserve.core.kv.flight.KvTransferServer.ReceivePath;
import dev.pdserve.model.config.KvDtype;

/** The KV transfer contract for a 2-byte (bf16) layout over DIRECT send and DIRECT receive. */
class KvTransferDirectBf16Test extends KvTransferContract {
  @Override
  KvTransferServer.Options serverOptions() {
    return KvTransferServer.Options.DEFAULTS.withReceivePath(ReceivePath.DIRECT);
  }

  @Override
  KvTransferClient.Options clientOptions() {
    return KvTransferClient.Options.DEFAULTS.withSendPath(SendPath.DIRECT);
  }

  @Override
  KvDtype dtype() {
    return KvDtype.BF16;
  }
}
