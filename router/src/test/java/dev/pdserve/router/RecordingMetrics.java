package dev.pdserve.router;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** {@link RouterMetrics} that keeps every event, for assertions. */
final class RecordingMetrics implements RouterMetrics {
  record Finished(
      String finishReason, long queueNanos, long prefillNanos, long decodeNanos, long e2eNanos) {}

  private final List<String> rejected = new CopyOnWriteArrayList<>();
  private final List<Finished> finished = new CopyOnWriteArrayList<>();
  private final List<Long> ttfts = new CopyOnWriteArrayList<>();
  private final List<Long> interTokens = new CopyOnWriteArrayList<>();
  private final List<String> migrations = new CopyOnWriteArrayList<>();

  @Override
  public void firstToken(long ttftNanos, int promptTokens, int tokens) {
    ttfts.add(ttftNanos);
  }

  @Override
  public void nextTokens(long interTokenNanos, int tokens) {
    interTokens.add(interTokenNanos);
  }

  @Override
  public void finished(
      String finishReason, long queueNanos, long prefillNanos, long decodeNanos, long e2eNanos) {
    finished.add(new Finished(finishReason, queueNanos, prefillNanos, decodeNanos, e2eNanos));
  }

  @Override
  public void rejected(String reason) {
    rejected.add(reason);
  }

  @Override
  public void migrated(String reason) {
    migrations.add(reason);
  }

  List<String> migrations() {
    return List.copyOf(migrations);
  }

  List<String> rejected() {
    return List.copyOf(rejected);
  }

  List<Finished> finished() {
    return List.copyOf(finished);
  }

  List<Long> ttfts() {
    return List.copyOf(ttfts);
  }

  List<Long> interTokens() {
    return List.copyOf(interTokens);
  }
}
