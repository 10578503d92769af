package dev.pdserve.prefill;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.prefill.PrefillChunkScheduler.Admission;
import dev.pdserve.prefill.PrefillChunkScheduler.Chunk;
import dev.pdserve.prefill.PrefillChunkScheduler.Plan;
import dev.pdserve.prefill.PrefillChunkScheduler.QueuedPrompt;
import dev.pdserve.prefill.PrefillChunkScheduler.StartOutcome;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The prefill step's policy alone: which prompts compute in a step, and how many tokens each. */
class PrefillChunkSchedulerTest {

  /** A queued prompt: {@code cachedOnStart} of its tokens come from a prefix cache at start. */
  static final class Prompt implements QueuedPrompt {
    final String name;
    int remaining;
    final int cachedOnStart;
    boolean started;
    boolean cancelled;

    Prompt(String name, int tokens, int cachedOnStart) {
      this.name = name;
      this.remaining = tokens;
      this.cachedOnStart = cachedOnStart;
    }

    Prompt(String name, int tokens) {
      this(name, tokens, 0);
    }

    @Override
    public int remainingTokens() {
      return remaining;
    }

    @Override
    public boolean started() {
      return started;
    }

    @Override
    public boolean cancelled() {
      return cancelled;
    }

    @Override
    public String toString() {
      return name;
    }
  }

  /** Starts prompts unless told they must wait for blocks or fail; records what it was asked. */
  static final class RecordingAdmission implements Admission<Prompt> {
    final Set<String> mustWait = new HashSet<>();
    final Set<String> failing = new HashSet<>();
    final List<String> startsAsked = new ArrayList<>();
    final List<String> cancelledSeen = new ArrayList<>();

    @Override
    public StartOutcome start(Prompt p) {
      startsAsked.add(p.name);
      if (mustWait.contains(p.name)) {
        return StartOutcome.WAITING_FOR_BLOCKS;
      }
      if (failing.contains(p.name)) {
        return StartOutcome.FAILED;
      }
      p.started = true;
      p.remaining -= p.cachedOnStart;
      return StartOutcome.STARTED;
    }

    @Override
    public void cancelled(Prompt p) {
      cancelledSeen.add(p.name);
    }
  }

  final RecordingAdmission admission = new RecordingAdmission();

  static PrefillChunkScheduler scheduler(int chunkTokens, int maxBatchTokens) {
    return new PrefillChunkScheduler(new PrefillOptions(chunkTokens, maxBatchTokens));
  }

  /** The plan as "name:tokens" in order, e.g. "a:30 b:30". */
  static String chunks(Plan<Prompt> plan) {
    return plan.chunks().stream()
        .map((Chunk<Prompt> c) -> c.prompt().name + ":" + c.tokens())
        .collect(Collectors.joining(" "));
  }

  static String names(List<Prompt> prompts) {
    return prompts.stream().map(p -> p.name).collect(Collectors.joining(" "));
  }

  /** What the engine does with a plan: computes each chunk, drops those that leave. */
  static void compute(Plan<Prompt> plan, List<Prompt> queue) {
    for (Chunk<Prompt> c : plan.chunks()) {
      c.prompt().remaining -= c.tokens();
      if (c.prompt().remaining == 0) {
        queue.remove(c.prompt());
      }
    }
    queue.removeAll(plan.leaving());
  }

  @Test
  void shortPromptsAreBatchedInQueueOrderUntilTheStepBudgetIsSpent() {
    List<Prompt> queue =
        new ArrayList<>(
            List.of(
                new Prompt("a", 30), new Prompt("b", 30), new Prompt("c", 40), new Prompt("d", 5)));
    Plan<Prompt> plan = scheduler(64, 100).plan(queue, admission);
    assertEquals(
        "a:30 b:30 c:40", chunks(plan), "prompts fill the 100-token budget in queue order");
    assertEquals(100, plan.tokens());
    assertEquals(
        List.of("a", "b", "c"),
        admission.startsAsked,
        "the scan stops once the budget is spent: d is not even started");
    assertTrue(plan.leaving().isEmpty(), "nobody leaves: " + names(plan.leaving()));
  }

  @Test
  void aLongPromptIsComputedInChunksOfChunkTokensAcrossSteps() {
    PrefillChunkScheduler s = scheduler(128, 512);
    List<Prompt> queue = new ArrayList<>(List.of(new Prompt("long", 300)));
    List<String> steps = new ArrayList<>();
    while (!queue.isEmpty()) {
      Plan<Prompt> plan = s.plan(queue, admission);
      steps.add(chunks(plan));
      compute(plan, queue);
    }
    assertEquals(
        List.of("long:128", "long:128", "long:44"),
        steps,
        "a 300-token prompt takes chunks of at most 128 tokens");
    assertEquals(List.of("long"), admission.startsAsked, "a prompt is started once");
  }

  @Test
  void aChunkOverWhatIsLeftOfTheBudgetIsSkippedWhileSmallerOnesBehindItStillFit() {
    List<Prompt> queue =
        new ArrayList<>(
            List.of(
                new Prompt("a", 64),
                new Prompt("b", 64),
                new Prompt("c", 40),
                new Prompt("d", 36),
                new Prompt("e", 1)));
    Plan<Prompt> plan = scheduler(64, 100).plan(queue, admission);
    assertEquals(
        "a:64 d:36",
        chunks(plan),
        "b (64) and c (40) do not fit the 36 tokens left after a; d does and spends the budget");
    assertEquals(List.of("a", "d"), admission.startsAsked, "skipped prompts are not started");
    assertFalse(queue.get(1).started(), "b stays queued, not started");
  }

  @Test
  void theFirstChunkOfAStepIsTakenEvenWhenItSpendsTheWholeBudget() {
    List<Prompt> queue = new ArrayList<>(List.of(new Prompt("a", 500), new Prompt("b", 1)));
    Plan<Prompt> plan = scheduler(64, 64).plan(queue, admission);
    assertEquals("a:64", chunks(plan), "a's chunk is the whole budget and still goes in");
  }

  @Test
  void aPromptNotYetStartedIsMeasuredBeforeItsCachedPrefixIsKnown() {
    // "b" has 60 tokens of which 50 are cached: it would compute only 10, but before it starts
    // the scheduler sees a 60-token chunk, which does not fit the 40 tokens a left.
    List<Prompt> queue =
        new ArrayList<>(List.of(new Prompt("a", 60), new Prompt("b", 60, 50), new Prompt("c", 40)));
    Plan<Prompt> plan = scheduler(64, 100).plan(queue, admission);
    assertEquals("a:60 c:40", chunks(plan));

    List<Prompt> alone = new ArrayList<>(List.of(new Prompt("b", 60, 50), new Prompt("c", 64)));
    assertEquals(
        "b:10 c:64",
        chunks(scheduler(64, 100).plan(alone, admission)),
        "once started, only what the cache did not hold is computed and counted");
  }

  @Test
  void aPromptThatMustWaitForKvBlocksTakesNoBudgetAndIsRetriedNextStep() {
    Prompt big = new Prompt("big", 64);
    List<Prompt> queue = new ArrayList<>(List.of(big, new Prompt("small", 10)));
    admission.mustWait.add("big");
    PrefillChunkScheduler s = scheduler(64, 64);
    Plan<Prompt> first = s.plan(queue, admission);
    assertEquals("small:10", chunks(first), "the prompt behind the waiting one goes ahead");
    assertTrue(first.leaving().isEmpty(), "a waiting prompt stays queued");
    assertFalse(big.started());
    compute(first, queue);

    admission.mustWait.clear(); // blocks were freed
    assertEquals("big:64", chunks(s.plan(queue, admission)), "it starts once blocks are free");
    assertEquals(List.of("big", "small", "big"), admission.startsAsked);
  }

  @Test
  void whenEveryPromptWaitsForBlocksThePlanIsEmpty() {
    List<Prompt> queue = new ArrayList<>(List.of(new Prompt("a", 10), new Prompt("b", 10)));
    admission.mustWait.addAll(Set.of("a", "b"));
    Plan<Prompt> plan = scheduler(64, 64).plan(queue, admission);
    assertTrue(plan.isEmpty(), "nothing to compute: " + chunks(plan));
    assertTrue(plan.leaving().isEmpty());
  }

  @Test
  void cancelledPromptsLeaveTheQueueInOrderAndTakeNoBudget() {
    Prompt a = new Prompt("a", 30);
    Prompt b = new Prompt("b", 64);
    Prompt c = new Prompt("c", 30);
    Prompt d = new Prompt("d", 50);
    Prompt e = new Prompt("e", 10);
    a.cancelled = true;
    c.cancelled = true;
    e.cancelled = true;
    List<Prompt> queue = new ArrayList<>(List.of(a, b, c, d, e));
    Plan<Prompt> plan = scheduler(64, 100).plan(queue, admission);
    assertEquals("b:64", chunks(plan), "d (50) does not fit the 36 left after b");
    assertEquals("a c e", names(plan.leaving()), "every cancelled prompt the scan reached leaves");
    assertEquals(List.of("a", "c", "e"), admission.cancelledSeen, "ended in queue order");
    assertEquals(List.of("b"), admission.startsAsked, "cancelled prompts are never started");
  }

  @Test
  void aCancelledPromptBeyondTheSpentBudgetIsLeftForTheNextStep() {
    Prompt late = new Prompt("late", 5);
    late.cancelled = true;
    List<Prompt> queue = new ArrayList<>(List.of(new Prompt("a", 64), late));
    Plan<Prompt> plan = scheduler(64, 64).plan(queue, admission);
    assertEquals("a:64", chunks(plan));
    assertTrue(plan.leaving().isEmpty(), "the scan stopped before it reached the cancelled prompt");
    compute(plan, queue);
    assertEquals("late", names(scheduler(64, 64).plan(queue, admission).leaving()));
  }

  @Test
  void aPromptThatFailsToStartLeavesTheQueueAndOthersGoOn() {
    List<Prompt> queue = new ArrayList<>(List.of(new Prompt("broken", 20), new Prompt("ok", 20)));
    admission.failing.add("broken");
    Plan<Prompt> plan = scheduler(64, 64).plan(queue, admission);
    assertEquals("ok:20", chunks(plan));
    assertEquals("broken", names(plan.leaving()));
  }

  @Test
  void startedPromptsKeepTheirPlaceAndAreNotStartedAgain() {
    Prompt first = new Prompt("first", 100);
    Prompt second = new Prompt("second", 100);
    List<Prompt> queue = new ArrayList<>(List.of(first, second));
    PrefillChunkScheduler s = scheduler(50, 80);
    List<String> steps = new ArrayList<>();
    while (!queue.isEmpty()) {
      Plan<Prompt> plan = s.plan(queue, admission);
      steps.add(chunks(plan));
      compute(plan, queue);
    }
    assertEquals(
        List.of("first:50", "first:50", "second:50", "second:50"),
        steps,
        "first come, first served: the second prompt's 50 never fits the 30 left after the first's");
    assertEquals(List.of("first", "second"), admission.startsAsked);
  }
}
