package dev.pdserve.core.engine;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.logging.LogContext;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.model.engine.ImagePromptEncoder;
import dev.pdserve.model.engine.PrefillInputs;
import dev.pdserve.model.engine.PromptImages;
import dev.pdserve.model.vision.PromptImage;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * Where an engine's prompts get their images encoded ({@link ImagePromptEncoder}: decoded,
 * preprocessed, through the vision encoder or from its cache) off the engine's step loop, so a
 * prompt's images never stall the steps of the others: one owned thread ({@code <name>-0}), prompts
 * in arrival order. An image that cannot be used fails its prompt with INVALID_ARGUMENT; anything
 * else that goes wrong (an Error such as an OutOfMemoryError too, logged at ERROR) with
 * UNAVAILABLE. {@link #close()} fails the prompts still waiting.
 */
public final class ImageEncodingStage implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(ImageEncodingStage.class);

  private final ImagePromptEncoder encoder;
  private final String nodeId;
  private final ThreadPoolExecutor thread;

  public ImageEncodingStage(String threadName, String nodeId, ImagePromptEncoder encoder) {
    this.encoder = encoder;
    this.nodeId = nodeId;
    this.thread =
        new ThreadPoolExecutor(
            1,
            1,
            0,
            TimeUnit.MILLISECONDS,
            new LinkedBlockingQueue<>(),
            new NamedThreadFactory(threadName, true, nodeId));
  }

  public ImagePromptEncoder encoder() {
    return encoder;
  }

  /**
   * Checks a prompt's images against its token ids (cheap: no pixel decoded).
   *
   * @throws ServingException INVALID_ARGUMENT naming the image that does not fit
   */
  public PromptImages check(String requestId, int[] ids, List<PromptImage> images) {
    try {
      return encoder.check(ids, images);
    } catch (IllegalArgumentException e) {
      throw ServingException.invalid("request " + requestId + ": " + e.getMessage());
    }
  }

  /** The prompt's prefill inputs once its images are encoded, or its failure. */
  public CompletableFuture<PrefillInputs> encode(String requestId, PromptImages images) {
    Task task = new Task(requestId, images);
    try {
      thread.execute(task);
    } catch (RejectedExecutionException e) {
      task.abandon();
    }
    return task.result;
  }

  private final class Task implements Runnable {
    final String requestId;
    final PromptImages images;
    final CompletableFuture<PrefillInputs> result = new CompletableFuture<>();

    Task(String requestId, PromptImages images) {
      this.requestId = requestId;
      this.images = images;
    }

    @Override
    public void run() {
      try (CloseableThreadContext.Instance ctx = LogContext.request(nodeId, requestId)) {
        result.complete(encoder.inputs(images));
      } catch (IllegalArgumentException e) {
        result.completeExceptionally(
            ServingException.invalid("request " + requestId + ": " + e.getMessage()));
      } catch (RuntimeException e) {
        result.completeExceptionally(
            ServingException.unavailable(
                "encoding the images of request " + requestId + " failed: " + e, e));
      } catch (Error e) { // an OutOfMemoryError, say: the prompt must not wait for ever
        LOG.error("encoding the images of request {} died of {}", requestId, e.toString(), e);
        result.completeExceptionally(
            ServingException.unavailable(
                "encoding the images of request "
                    + requestId
                    + " failed ("
                    + e.getClass().getSimpleName()
                    + (e.getMessage() == null ? "" : ": " + e.getMessage())
                    + "); nothing of it runs here any more, so retrying it is safe",
                e));
      }
    }

    void abandon() {
      result.completeExceptionally(
          ServingException.unavailable(
              "node shutting down: the images of request " + requestId + " were not encoded"));
    }
  }

  /** Stops taking prompts, fails those not started, waits (up to 5 s) for the one encoding. */
  @Override
  public void close() {
    thread.shutdown();
    List<Runnable> waiting = new ArrayList<>();
    thread.getQueue().drainTo(waiting);
    for (Runnable r : waiting) {
      ((Task) r).abandon();
    }
    try {
      thread.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
