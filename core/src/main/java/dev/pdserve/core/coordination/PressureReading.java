package dev.pdserve.core.coordination;

/**
 * What {@link SwitchPolicy} saw on its latest evaluation, for logs, admin status and the simulator.
 *
 * @param atMillis time of the evaluation
 * @param prefillNodes ACTIVE prefill nodes
 * @param decodeNodes ACTIVE decode nodes
 * @param prefillPressure instantaneous prefill pressure (1.0 = queueing delay at the TTFT target)
 * @param decodePressure instantaneous decode pressure (1.0 = at the TPOT / batch / KV target)
 * @param smoothedPrefill prefill pressure smoothed over the window
 * @param smoothedDecode decode pressure smoothed over the window
 * @param verdict why the policy did or did not switch, e.g. {@code "cool-down 4200 ms left"}
 */
public record PressureReading(
    long atMillis,
    int prefillNodes,
    int decodeNodes,
    double prefillPressure,
    double decodePressure,
    double smoothedPrefill,
    double smoothedDecode,
    String verdict) {}
