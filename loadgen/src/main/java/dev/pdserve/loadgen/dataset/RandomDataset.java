package dev.pdserve.loadgen.dataset;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Random token prompts with lengths uniform in {@code [len*(1-r), len*(1+r)]} (vLLM's {@code
 * random}).
 */
public final class RandomDataset implements Dataset {
  private final DatasetConfig cfg;
  private final TokenSpace tokens;
  private final PromptForm form;
  private final long seed;

  public RandomDataset(
      DatasetConfig cfg, TokenSpace tokens, PromptForm form, long seed, int maxContext) {
    this.cfg = cfg;
    this.tokens = tokens;
    this.form = form;
    this.seed = seed;
    long worst = upper(cfg.inputLen()) + upper(cfg.outputLen());
    if (maxContext > 0 && worst > maxContext) {
      throw new IllegalArgumentException(
          "--input-len "
              + cfg.inputLen()
              + " and --output-len "
              + cfg.outputLen()
              + " with --range-ratio "
              + cfg.rangeRatio()
              + " reach "
              + worst
              + " tokens, beyond the model's context of "
              + maxContext
              + " tokens");
    }
  }

  private int lower(int len) {
    return Math.max(1, (int) Math.floor(len * (1 - cfg.rangeRatio())));
  }

  private int upper(int len) {
    return Math.max(1, (int) Math.ceil(len * (1 + cfg.rangeRatio())));
  }

  @Override
  public BenchRequest get(long index) {
    SplittableRandom rnd = TokenSpace.random(seed, index);
    int in = rnd.nextInt(lower(cfg.inputLen()), upper(cfg.inputLen()) + 1);
    int out = rnd.nextInt(lower(cfg.outputLen()), upper(cfg.outputLen()) + 1);
    int[] ids = tokens.draw(rnd, in);
    return form == PromptForm.TOKEN_IDS
        ? new BenchRequest(index, ids, null, in, out, List.of())
        : new BenchRequest(index, null, TokenSpace.render(ids), in, out, List.of());
  }

  @Override
  public String describe() {
    return "random(input_len="
        + cfg.inputLen()
        + ", output_len="
        + cfg.outputLen()
        + ", range_ratio="
        + cfg.rangeRatio()
        + ")";
  }
}
