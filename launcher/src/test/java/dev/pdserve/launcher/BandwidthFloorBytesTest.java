package dev.pdserve.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import org.junit.jupiter.api.Test;

/**
 * {@code model bench --bandwidth-floor}'s bytes a decode token reads count the LM head whether or
 * not its codes are shared with the embedding table, and one row of the table as stored.
 */
class BandwidthFloorBytesTest {
  @Test
  void aSharedHeadIsStillReadAndTheTableRowAtItsStoredSize() {
    ModelConfig cfg = ModelPresets.get("ernie-4.5-vl-28b-a3b");
    for (QuantMode mode : new QuantMode[] {QuantMode.INT8, QuantMode.INT4}) {
      WeightQuantization on = WeightQuantization.of(mode);
      WeightQuantization off = on.withQuantizedEmbeddings(false);
      long row = on.bytes(cfg, -1, WeightComponent.EMBEDDINGS, cfg.hidden(), cfg.vocabSize());
      long diff =
          ModelBenchCommand.bytesPerToken(cfg, off) - ModelBenchCommand.bytesPerToken(cfg, on);
      assertEquals(
          4L * cfg.hidden() - row / cfg.vocabSize(), diff, mode + ": only the row differs");
    }
  }
}
