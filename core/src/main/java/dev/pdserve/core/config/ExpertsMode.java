package dev.pdserve.core.config;

import java.util.Locale;

/** Where a worker's routed experts run. */
public enum ExpertsMode {
  /** Every expert in the worker's own process (single-node mode). */
  LOCAL,
  /** On expert shards, found through the expert placement in the registry. */
  REMOTE;

  public static ExpertsMode parse(String s) {
    try {
      return valueOf(s.trim().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("must be local or remote, got '" + s + "'");
    }
  }
}
