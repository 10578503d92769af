package dev.pdserve.prefill;

import java.util.ArrayList;
import java.util.List;

/** {@link PrefillMetrics} that keeps the steps the engine reported, as (prompts, tokens). */
final class RecordingMetrics implements PrefillMetrics {
  private final List<int[]> steps = new ArrayList<>();

  @Override
  public synchronized void step(int prompts, int tokens, long nanos) {
    steps.add(new int[] {prompts, tokens});
  }

  synchronized List<int[]> steps() {
    return List.copyOf(steps);
  }
}
