package dev.pdserve.decode;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.model.engine.Emission;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Hands a sequence's events to its {@link TokenSink} (gRPC writes) on one thread of its own, in
 * order, so I/O never delays a decode step. A sink that throws on a token gets its sequence
 * cancelled.
 */
final class TokenEmitter implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(TokenEmitter.class);

  private final ExecutorService thread;

  TokenEmitter(String nodeId) {
    this.thread =
        Executors.newSingleThreadExecutor(new NamedThreadFactory("decode-emit", true, nodeId));
  }

  void token(DecodeSequence s, Emission e) {
    thread.execute(
        () -> {
          try {
            s.sink.onToken(e);
          } catch (RuntimeException ex) {
            LOG.warn("token sink of {} failed: {}", s.join.requestId(), ex.toString());
            s.cancelled = true;
          }
        });
  }

  void migrated(DecodeSequence s, Migration m) {
    thread.execute(
        () -> {
          try {
            s.sink.onMigrated(m);
          } catch (RuntimeException ex) {
            LOG.warn("token sink of {} failed: {}", s.join.requestId(), ex.toString());
          }
        });
  }

  /** Fails the sequence's stream, if it has one (on the calling thread once this is closed). */
  void error(DecodeSequence s, Throwable t) {
    TokenSink sink = s.sink;
    if (sink == null) {
      return;
    }
    Runnable r =
        () -> {
          try {
            sink.onError(t);
          } catch (RuntimeException ex) {
            LOG.warn("token sink of {} failed: {}", s.requestId(), ex.toString());
          }
        };
    try {
      thread.execute(r);
    } catch (RejectedExecutionException e) {
      r.run(); // shutting down
    }
  }

  /** Delivers what is queued (waiting up to 5 s), then stops. */
  @Override
  public void close() {
    thread.shutdown();
    try {
      thread.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
