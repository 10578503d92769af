package dev.pdserve.decode;

import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.Emission;

/**
 * Where a decoding request's tokens go. Called from the decode loop: implementations must not
 * block. Exactly one of: a finishing emission ({@link Emission#finished()}), or {@link #onError}.
 */
public interface TokenSink {
  void onToken(Emission emission);

  void onError(Throwable error);

  /**
   * The sequence moved to another decode node and ends here (instead of a finishing emission):
   * every token before it has been given to {@link #onToken}. By default the request fails, for
   * sinks that cannot follow a sequence elsewhere.
   */
  default void onMigrated(Migration migration) {
    onError(
        ServingException.unavailable(
            "sequence moved to decode node "
                + migration.target().nodeId()
                + ", which this stream cannot follow"));
  }
}
