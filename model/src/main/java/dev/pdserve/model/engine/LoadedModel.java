package dev.pdserve.model.engine;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelConfigJson;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.config.VisionConfig;
import dev.pdserve.model.tokenizer.ByteTokenizer;
import dev.pdserve.model.tokenizer.HfTokenizer;
import dev.pdserve.model.tokenizer.Tokenizer;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.ModelDirectory;
import dev.pdserve.model.weights.WeightSource;
import java.util.Optional;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A model's config, weight source and tokenizer, loaded from a {@link ModelSpec}. Dummy presets use
 * the byte tokenizer; a model directory uses its own {@code tokenizer.json} (through DJL's
 * HuggingFace tokenizers, offline) and falls back to the byte tokenizer when it has none.
 */
public final class LoadedModel implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(LoadedModel.class);

  private final ModelSpec spec;
  private final ModelConfig config;
  private final WeightSource weights;
  private final Tokenizer tokenizer;
  private final AutoCloseable owned;

  private LoadedModel(
      ModelSpec spec,
      ModelConfig config,
      WeightSource weights,
      Tokenizer tokenizer,
      AutoCloseable owned) {
    this.spec = spec;
    this.config = config;
    this.weights = weights;
    this.tokenizer = tokenizer;
    this.owned = owned;
  }

  public static LoadedModel load(ModelSpec spec) {
    if (spec.modelDir() != null) {
      ModelDirectory dir = ModelDirectory.open(spec.modelDir());
      try {
        ModelConfig cfg = dir.config();
        Tokenizer tok;
        AutoCloseable owned = dir;
        if (dir.tokenizerJson().isPresent()) {
          HfTokenizer hf = HfTokenizer.open(dir.tokenizerJson().get());
          tok = hf;
          owned =
              () -> {
                try (dir;
                    hf) {
                  // close both
                }
              };
        } else {
          tok = byteTokenizer(cfg);
          LOG.warn("{} has no tokenizer.json; using the byte tokenizer", spec.modelDir());
        }
        return new LoadedModel(spec, withImageTokens(cfg, tok), dir.weights(), tok, owned);
      } catch (RuntimeException e) {
        dir.close();
        throw e;
      }
    }
    if (spec.preset() != null && ModelPresets.isSizingOnly(spec.preset())) {
      throw new IllegalArgumentException(
          "preset "
              + spec.preset()
              + " is for sizing ('pdserve model info') and 'pdserve simulate' only: its dummy"
              + " weights are not generated (hundreds of GB); serve a converted checkpoint"
              + " directory of it instead");
    }
    ModelConfig cfg =
        spec.preset() != null
            ? ModelPresets.get(spec.preset())
            : ModelConfigJson.read(spec.configFile());
    Tokenizer tok = byteTokenizer(cfg);
    return new LoadedModel(
        spec,
        withImageTokens(cfg, tok),
        spec.lowBitWeights()
            ? DummyWeights.lowBit(cfg, spec.weightSeed())
            : new DummyWeights(cfg, spec.weightSeed()),
        tok,
        () -> {});
  }

  /** A vision model's image token ids, those config.json does not give taken from the tokenizer. */
  private static ModelConfig withImageTokens(ModelConfig cfg, Tokenizer tok) {
    if (cfg.vision().isEmpty()) {
      return cfg;
    }
    VisionConfig v = cfg.vision().get();
    return cfg.withVision(
        Optional.of(v.withTokens(v.tokens().resolve(tok::specialTokenId, cfg.name()))));
  }

  /** The same config and tokenizer over other weights (tests, weight transforms). */
  static LoadedModel withWeights(LoadedModel base, WeightSource weights) {
    return new LoadedModel(base.spec, base.config, weights, base.tokenizer, base.owned);
  }

  private static Tokenizer byteTokenizer(ModelConfig cfg) {
    if (cfg.vocabSize() < ModelPresets.BYTE_VOCAB) {
      throw new IllegalArgumentException(
          "vocab_size "
              + cfg.vocabSize()
              + " is smaller than the byte tokenizer's "
              + ModelPresets.BYTE_VOCAB
              + " ids; give the model a tokenizer.json");
    }
    return cfg.vocabSize() == ModelPresets.BYTE_VOCAB
        ? ByteTokenizer.create()
        : ByteTokenizer.withVocabSize(cfg.vocabSize());
  }

  public ModelSpec spec() {
    return spec;
  }

  public ModelConfig config() {
    return config;
  }

  public WeightSource weights() {
    return weights;
  }

  public Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public void close() {
    try {
      owned.close();
    } catch (Exception e) {
      throw new IllegalStateException("closing model " + spec.describe(), e);
    }
  }
}
