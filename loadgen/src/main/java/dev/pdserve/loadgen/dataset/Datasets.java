package dev.pdserve.loadgen.dataset;

import java.nio.file.Files;
import java.nio.file.Path;

/** Opens the dataset a {@link DatasetConfig} names. */
public final class Datasets {
  /** The shared Mooncake trace, relative to the project root (the trace dataset's default file). */
  public static final Path DEFAULT_TRACE =
      Path.of("..", "shared", "data", "traces", "mooncake-conversation.jsonl");

  private Datasets() {}

  public static Dataset open(
      DatasetConfig cfg, TokenSpace tokens, PromptForm form, long seed, int maxContext) {
    cfg.validate();
    return switch (cfg.name()) {
      case "random" -> new RandomDataset(cfg, tokens, form, seed, maxContext);
      case "prefix" -> new PrefixDataset(cfg, tokens, form, seed, maxContext);
      case "sharegpt" -> new ShareGptDataset(cfg, seed, maxContext);
      case "random-mm" -> new RandomMultimodalDataset(cfg, tokens, seed, maxContext);
      case "trace" -> {
        DatasetConfig c = cfg.datasetPath() != null ? cfg : cfg.withPath(DEFAULT_TRACE);
        if (!Files.isReadable(c.datasetPath())) {
          throw new IllegalArgumentException(
              "--dataset-path "
                  + c.datasetPath()
                  + " is not a readable file (the Mooncake trace lives in shared/data/traces/)");
        }
        yield new TraceDataset(c, tokens, form, seed, maxContext);
      }
      default ->
          throw new IllegalArgumentException(
              "--dataset-name must be random, random-mm, sharegpt, prefix or trace, got '"
                  + cfg.name()
                  + "'");
    };
  }
}
