package dev.pdserve.prefill;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@link PrefillMetrics} that keeps the steps the engine reported, as (prompts, tokens), and counts
 * its vision events.
 */
final class RecordingMetrics implements PrefillMetrics {
  private final List<int[]> steps = new ArrayList<>();
  final AtomicInteger imagesEncoded = new AtomicInteger();
  final AtomicInteger encoderCacheHits = new AtomicInteger();
  final AtomicInteger visionTokens = new AtomicInteger();

  @Override
  public synchronized void step(int prompts, int tokens, long nanos) {
    steps.add(new int[] {prompts, tokens});
  }

  @Override
  public void imageEncoded(long nanos) {
    imagesEncoded.incrementAndGet();
  }

  @Override
  public void encoderCacheHit() {
    encoderCacheHits.incrementAndGet();
  }

  @Override
  public void visionTokens(int tokens) {
    visionTokens.addAndGet(tokens);
  }

  synchronized List<int[]> steps() {
    return List.copyOf(steps);
  }
}
