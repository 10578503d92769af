package dev.pdserve.model.engine;

/** Receives a request's tokens as they are generated. */
@FunctionalInterface
public interface TokenListener {
  void onToken(Emission emission);

  TokenListener NONE = e -> {};
}
