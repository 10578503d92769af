package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.fail;

import dev.pdserve.model.engine.Emission;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A {@link TokenSink} that records a stream: its tokens, and how it ended (a finishing emission, a
 * migration, or an error). Waits are bounded only to turn a hang into a failure.
 */
final class RecordingSink implements TokenSink {
  private static final long HANG_GUARD_SECONDS = 60;

  private final List<Integer> tokens = new ArrayList<>(); // guarded by this
  private final List<CompletableFuture<Void>> milestones = new ArrayList<>(); // guarded by this
  private final List<Integer> milestoneCounts = new ArrayList<>(); // guarded by this
  final CompletableFuture<Emission> finished = new CompletableFuture<>();
  final CompletableFuture<Migration> migrated = new CompletableFuture<>();
  final CompletableFuture<Throwable> failed = new CompletableFuture<>();

  @Override
  public synchronized void onToken(Emission e) {
    if (e.tokenId() >= 0) {
      tokens.add(e.tokenId());
      for (int i = 0; i < milestones.size(); i++) {
        if (tokens.size() >= milestoneCounts.get(i)) {
          milestones.get(i).complete(null);
        }
      }
    }
    if (e.finished()) {
      finished.complete(e);
    }
  }

  @Override
  public void onError(Throwable t) {
    failed.complete(t);
    finished.completeExceptionally(t);
    migrated.completeExceptionally(t);
  }

  @Override
  public void onMigrated(Migration m) {
    migrated.complete(m);
  }

  /**
   * Completes (on the thread that delivers tokens, before it delivers the next) once {@code n}
   * tokens have arrived.
   */
  synchronized CompletableFuture<Void> tokensReached(int n) {
    CompletableFuture<Void> f = new CompletableFuture<>();
    if (tokens.size() >= n) {
      f.complete(null);
    } else {
      milestones.add(f);
      milestoneCounts.add(n);
    }
    return f;
  }

  synchronized int[] tokenIds() {
    return tokens.stream().mapToInt(Integer::intValue).toArray();
  }

  synchronized int tokenCount() {
    return tokens.size();
  }

  /** The finishing emission; fails the test if the stream failed or did not end. */
  Emission awaitFinish() {
    return await(finished, "the stream to finish");
  }

  Migration awaitMigration() {
    return await(migrated, "the stream to migrate");
  }

  Throwable awaitError() {
    return await(failed, "the stream to fail");
  }

  static <T> T await(CompletableFuture<T> f, String what) {
    try {
      return f.get(HANG_GUARD_SECONDS, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      throw new AssertionError("waiting for " + what + ", the stream failed: " + e.getCause(), e);
    } catch (TimeoutException e) {
      return fail("still waiting for " + what + " after " + HANG_GUARD_SECONDS + " s (a hang)");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return fail("interrupted waiting for " + what);
    }
  }
}
