package dev.pdserve.prefill;

import java.util.ArrayList;
import java.util.List;

/**
 * Chooses one prefill step's work: which queued prompts compute in the step and how many of their
 * tokens. A function of the queue, in order, and two budgets ({@link PrefillOptions#chunkTokens()}
 * per prompt, {@link PrefillOptions#maxBatchTokens()} per step); it runs no model and owns no
 * thread. The policy:
 *
 * <ul>
 *   <li>prompts are taken first come, first served;
 *   <li>a cancelled prompt the scan reaches leaves the queue ({@link Admission#cancelled});
 *   <li>a prompt's chunk is what it has left to compute, at most {@code chunkTokens}; a chunk
 *       larger than what is left of the step's budget is skipped (the prompt stays queued) unless
 *       the step has no chunk yet;
 *   <li>a prompt that has not started is started first ({@link Admission#start}): one that must
 *       wait for KV blocks stays queued, one that fails to start leaves the queue; starting may
 *       shorten what is left to compute (a cached prefix), so its chunk is measured again after;
 *   <li>the scan stops as soon as the budget is spent.
 * </ul>
 */
final class PrefillChunkScheduler {
  /** What the scheduler reads of a queued prompt. */
  interface QueuedPrompt {
    /** Prompt tokens not computed yet. */
    int remainingTokens();

    /** Whether the prompt holds its KV already (started in an earlier step). */
    boolean started();

    boolean cancelled();
  }

  /** How an attempt to start a prompt ended. */
  enum StartOutcome {
    /** It holds its KV: it computes in this step. */
    STARTED,
    /** Too few free KV blocks now: it stays queued and is tried again next step. */
    WAITING_FOR_BLOCKS,
    /** It could not start and has been failed: it leaves the queue. */
    FAILED
  }

  /** What the scan does to prompts as it reaches them, in queue order. */
  interface Admission<J> {
    /** Gives a prompt that has not started its KV. */
    StartOutcome start(J prompt);

    /** A cancelled prompt the scan reached (ended at once, so later prompts may use its blocks). */
    void cancelled(J prompt);
  }

  /** {@code tokens} of {@code prompt}'s next tokens computed in the step. */
  record Chunk<J>(J prompt, int tokens) {}

  /**
   * One step's plan.
   *
   * @param chunks what the step computes, in queue order
   * @param leaving prompts that leave the queue (cancelled, or failed to start), in queue order
   */
  record Plan<J>(List<Chunk<J>> chunks, List<J> leaving) {
    boolean isEmpty() {
      return chunks.isEmpty();
    }

    /** Prompt tokens the step computes. */
    int tokens() {
      int n = 0;
      for (Chunk<J> c : chunks) {
        n += c.tokens();
      }
      return n;
    }
  }

  private final int chunkTokens;
  private final int maxBatchTokens;

  PrefillChunkScheduler(PrefillOptions options) {
    this.chunkTokens = options.chunkTokens();
    this.maxBatchTokens = options.maxBatchTokens();
  }

  /** Plans the next step over {@code queue} (not modified: the caller removes the leaving). */
  <J extends QueuedPrompt> Plan<J> plan(List<J> queue, Admission<? super J> admission) {
    List<Chunk<J>> chunks = new ArrayList<>();
    List<J> leaving = new ArrayList<>();
    int budget = maxBatchTokens;
    for (J prompt : queue) {
      if (prompt.cancelled()) {
        leaving.add(prompt);
        admission.cancelled(prompt);
        continue;
      }
      if (chunkOf(prompt) > budget && !chunks.isEmpty()) {
        continue;
      }
      if (!prompt.started()) {
        StartOutcome outcome = admission.start(prompt);
        if (outcome == StartOutcome.WAITING_FOR_BLOCKS) {
          continue;
        }
        if (outcome == StartOutcome.FAILED) {
          leaving.add(prompt);
          continue;
        }
      }
      int n = chunkOf(prompt); // a cached prefix is not computed
      chunks.add(new Chunk<>(prompt, n));
      budget -= n;
      if (budget <= 0) {
        break;
      }
    }
    return new Plan<>(List.copyOf(chunks), List.copyOf(leaving));
  }

  private int chunkOf(QueuedPrompt prompt) {
    return Math.min(prompt.remainingTokens(), chunkTokens);
  }
}
