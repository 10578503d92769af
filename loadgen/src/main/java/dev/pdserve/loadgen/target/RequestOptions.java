package dev.pdserve.loadgen.target;

/** Per-request settings shared by every request of a run. */
public record RequestOptions(
    String model, double temperature, boolean ignoreEos, double timeoutSeconds) {}
