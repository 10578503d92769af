package dev.pdserve.decode;

import dev.pdserve.model.engine.Emission;

/**
 * Where a decoding request's tokens go. Called from the decode loop: implementations must not
 * block. Exactly one of: a finishing emission ({@link Emission#finished()}), or {@link #onError}.
 */
public interface TokenSink {
  void onToken(Emission emission);

  void onError(Throwable error);
}
