package dev.pdserve.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.serving.ServingException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** A {@link ResponseSink} that records what a request sent: tokens, then its outcomes. */
final class RecordingSink implements ResponseSink {
  private final List<Integer> tokens = new ArrayList<>(); // guarded by this
  private final List<Float> logprobs = new ArrayList<>(); // guarded by this
  private final List<String> outcomes = new ArrayList<>(); // guarded by this
  private final CountDownLatch ended = new CountDownLatch(1);
  private String finishReason; // guarded by this
  private int completionTokens; // guarded by this
  private int promptTokens; // guarded by this
  private ServingException error; // guarded by this

  @Override
  public synchronized void onDelta(int[] tokenIds, String text, float[] lps) {
    for (int t : tokenIds) {
      tokens.add(t);
    }
    for (float lp : lps) {
      logprobs.add(lp);
    }
  }

  @Override
  public synchronized void onComplete(
      String finishReason,
      String stopReason,
      int promptTokens,
      int completionTokens,
      int cachedTokens) {
    outcomes.add("completion " + finishReason);
    this.finishReason = finishReason;
    this.promptTokens = promptTokens;
    this.completionTokens = completionTokens;
    ended.countDown();
  }

  @Override
  public synchronized void onError(ServingException e) {
    outcomes.add("error " + e.kind() + ": " + e.getMessage());
    this.error = e;
    ended.countDown();
  }

  /** Waits (for an outcome sent on another thread) and returns the error; fails on a completion. */
  ServingException awaitError() {
    await();
    synchronized (this) {
      assertNotNull(error, "expected the request to fail, but it ended with " + outcomes);
      return error;
    }
  }

  /** Waits for the outcome and returns the completion's finish reason; fails on an error. */
  String awaitCompletion() {
    await();
    synchronized (this) {
      assertNotNull(
          finishReason, "expected the request to complete, but it ended with " + outcomes);
      return finishReason;
    }
  }

  private void await() {
    try {
      assertTrue(ended.await(10, TimeUnit.SECONDS), "the request sent no outcome within 10 s");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError("interrupted", e);
    }
  }

  synchronized List<String> outcomes() {
    return List.copyOf(outcomes);
  }

  /** Exactly one completion or one error was sent. */
  synchronized void assertOneOutcome() {
    assertEquals(1, outcomes.size(), "a request must end exactly once; it sent " + outcomes);
  }

  synchronized void assertNoOutcome() {
    assertEquals(List.of(), outcomes, "expected nothing sent to the client");
  }

  synchronized List<Integer> tokens() {
    return List.copyOf(tokens);
  }

  synchronized List<Float> logprobs() {
    return List.copyOf(logprobs);
  }

  synchronized int completionTokens() {
    return completionTokens;
  }

  synchronized int promptTokens() {
    return promptTokens;
  }
}
