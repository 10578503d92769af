package dev.pdserve.decode;

/** KV blocks a decode node set aside for one request's prompt and completion. */
public record Reservation(
    String transferId, String requestId, int[] blocks, int promptTokens, int maxTokens) {
  public Reservation {
    blocks = blocks.clone();
  }
}
