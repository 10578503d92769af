package dev.pdserve.router;

/**
 * Router settings.
 *
 * @param maxActive requests in flight at once (prefilling or decoding)
 * @param maxQueued requests admitted but waiting for a slot; beyond it requests are refused with
 *     RESOURCE_EXHAUSTED and a retry hint
 * @param prefillAttempts prefill nodes tried for one request when one is UNAVAILABLE
 */
public record RouterOptions(int maxActive, int maxQueued, int prefillAttempts) {
  public RouterOptions {
    if (maxActive < 1 || maxQueued < 0 || prefillAttempts < 1) {
      throw new IllegalArgumentException(
          "router needs max active >= 1, max queued >= 0, prefill attempts >= 1");
    }
  }

  public static RouterOptions defaults() {
    return new RouterOptions(256, 1024, 2);
  }
}
