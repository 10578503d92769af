package dev.pdserve.loadgen.dataset;

import java.util.List;
import java.util.OptionalLong;
import java.util.SplittableRandom;

/**
 * Shared-prefix prompts: {@code --num-prefixes} random prefixes of {@code --prefix-len} tokens,
 * each followed by {@code --suffixes-per-prefix} unique suffixes of {@code --suffix-len} tokens.
 * The stream cycles through all prefix/suffix pairs in an order shuffled by the seed.
 */
public final class PrefixDataset implements Dataset {
  private final DatasetConfig cfg;
  private final TokenSpace tokens;
  private final PromptForm form;
  private final long seed;
  private final int[] order; // combo ids, shuffled

  public PrefixDataset(
      DatasetConfig cfg, TokenSpace tokens, PromptForm form, long seed, int maxContext) {
    this.cfg = cfg;
    this.tokens = tokens;
    this.form = form;
    this.seed = seed;
    int total = cfg.prefixLen() + cfg.suffixLen() + cfg.outputLen();
    if (maxContext > 0 && total > maxContext) {
      throw new IllegalArgumentException(
          "--prefix-len "
              + cfg.prefixLen()
              + " + --suffix-len "
              + cfg.suffixLen()
              + " + --output-len "
              + cfg.outputLen()
              + " = "
              + total
              + " tokens, beyond the model's context of "
              + maxContext
              + " tokens");
    }
    long combos = (long) cfg.numPrefixes() * cfg.suffixesPerPrefix();
    if (combos > 10_000_000) {
      throw new IllegalArgumentException(
          "--num-prefixes x --suffixes-per-prefix must be <= 10000000, got " + combos);
    }
    order = new int[(int) combos];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    SplittableRandom rnd = TokenSpace.random(seed, -7);
    for (int i = order.length - 1; i > 0; i--) {
      int j = rnd.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }

  @Override
  public BenchRequest get(long index) {
    int combo = order[(int) Math.floorMod(index, (long) order.length)];
    int prefix = combo / cfg.suffixesPerPrefix();
    int[] p = tokens.draw(TokenSpace.random(seed, 1_000_000_000_000L + prefix), cfg.prefixLen());
    int[] s = tokens.draw(TokenSpace.random(seed, 2_000_000_000_000L + combo), cfg.suffixLen());
    int[] ids = new int[p.length + s.length];
    System.arraycopy(p, 0, ids, 0, p.length);
    System.arraycopy(s, 0, ids, p.length, s.length);
    return form == PromptForm.TOKEN_IDS
        ? new BenchRequest(index, ids, null, ids.length, cfg.outputLen(), List.of())
        : new BenchRequest(
            index, null, TokenSpace.render(ids), ids.length, cfg.outputLen(), List.of());
  }

  @Override
  public OptionalLong size() {
    return OptionalLong.empty(); // cycles
  }

  @Override
  public String describe() {
    return "prefix(num_prefixes="
        + cfg.numPrefixes()
        + ", suffixes_per_prefix="
        + cfg.suffixesPerPrefix()
        + ", prefix_len="
        + cfg.prefixLen()
        + ", suffix_len="
        + cfg.suffixLen()
        + ", output_len="
        + cfg.outputLen()
        + ")";
  }
}
