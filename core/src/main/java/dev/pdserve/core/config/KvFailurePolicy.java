package dev.pdserve.core.config;

/**
 * What the router does when a prefill node fails during a prefill or its KV push ({@code
 * pdserve.kv.failure-policy}).
 */
public enum KvFailurePolicy {
  /** Compute the KV again: a fresh reservation, the prefill on another prefill node. */
  RECOMPUTE,
  /** End the request with UNAVAILABLE. */
  FAIL
}
