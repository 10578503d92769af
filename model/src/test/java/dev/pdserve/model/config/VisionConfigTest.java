package dev.pdserve.model.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.tokenizer.ByteTokenizer;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class VisionConfigTest {
  /** The keys of the ERNIE-4.5-VL-28B-A3B-PT config.json that describe the vision side. */
  static final String PT_VL =
      """
      {
        "hidden_size": 2560, "num_hidden_layers": 28, "num_attention_heads": 20,
        "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 103424,
        "intermediate_size": 12288, "rms_norm_eps": 1e-05, "rope_theta": 500000,
        "moe_num_experts": [64, 64], "moe_intermediate_size": [1536, 512],
        "moe_layer_start_index": [1, 1], "moe_layer_end_index": [29, 28], "moe_k": 6,
        "moe_num_shared_experts": 2, "freq_allocation": 20,
        "pixel_hidden_size": 1280, "spatial_conv_size": 2, "temporal_conv_size": 2,
        "use_temporal_conv": true, "im_patch_id": 100295,
        "vision_config": {
          "depth": 32, "embed_dim": 1280, "hidden_size": 1280, "num_heads": 16,
          "mlp_ratio": 4, "patch_size": 14, "spatial_merge_size": 2, "in_channels": 3,
          "hidden_act": "quick_gelu"
        }
      }
      """;

  @Test
  void theReleaseConfigReadsAsTheRealTower() {
    ModelConfig cfg = ModelConfigJson.parse(PT_VL, "config.json");
    VisionConfig v = cfg.vision().orElseThrow();
    assertEquals(32, v.depth());
    assertEquals(1280, v.width());
    assertEquals(16, v.heads());
    assertEquals(5120, v.mlpWidth());
    assertEquals(14, v.patchSize());
    assertEquals(2, v.spatialMerge());
    assertEquals(2, v.temporalMerge());
    assertEquals(1e-6, v.layerNormEps());
    assertEquals(10000.0, v.ropeTheta());
    assertEquals(56L * 56, v.minPixels());
    assertEquals(28L * 28 * 6177, v.maxPixels());
    assertEquals(VisionConfig.CLIP_MEAN, v.imageMean());
    assertEquals(100295, v.tokens().placeholder());
    assertEquals(
        ImageTokenIds.UNKNOWN, v.tokens().start(), "not in the PT config: from the tokenizer");
    assertEquals(
        ModelPresets.get("ernie-4.5-vl-28b-a3b").vision().orElseThrow().parameters(2560),
        v.parameters(2560));
  }

  @Test
  void missingImageIdsComeFromTheTokenizersSpecialTokens() {
    ImageTokenIds ids =
        new ImageTokenIds(
                ImageTokenIds.UNKNOWN, ImageTokenIds.UNKNOWN, 9, ImageTokenIds.UNKNOWN, 11)
            .resolve(ByteTokenizer.create()::specialTokenId, "m");
    assertEquals(new ImageTokenIds(7, 8, 9, 10, 11), ids);
    ConfigException e =
        assertThrows(
            ConfigException.class,
            () -> ImageTokenIds.unknown().resolve(s -> OptionalInt.empty(), "m"));
    assertTrue(
        e.getMessage().contains("image_start_token_id is not in config.json"), e.getMessage());
  }

  @Test
  void theTransformersPortsKeysReadToo() {
    String hf =
        """
        {
          "text_config": {
            "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 288,
            "moe_num_experts": 4, "moe_intermediate_size": [16, 8], "moe_k": 2,
            "mlp_layer_types": ["dense", "sparse"], "freq_allocation": 2
          },
          "image_start_token_id": 7, "image_end_token_id": 8, "image_token_id": 9,
          "video_start_token_id": 10, "video_end_token_id": 11,
          "vision_config": {
            "depth": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 96,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_merge_size": 2,
            "rms_norm_eps": 1e-06
          }
        }
        """;
    VisionConfig v = ModelConfigJson.parse(hf, "hf.json").vision().orElseThrow();
    assertEquals(32, v.width());
    assertEquals(96, v.mlpWidth());
    assertEquals(new ImageTokenIds(7, 8, 9, 10, 11), v.tokens());
  }

  @Test
  void inconsistentVisionKeysAreRefusedByName() {
    ConfigException pixel =
        assertThrows(
            ConfigException.class,
            () ->
                ModelConfigJson.parse(
                    PT_VL.replace("\"pixel_hidden_size\": 1280", "\"pixel_hidden_size\": 1024"),
                    "c"));
    assertTrue(
        pixel.getMessage().contains("pixel_hidden_size (1024) must equal"), pixel.getMessage());
    ConfigException heads =
        assertThrows(
            ConfigException.class,
            () ->
                ModelConfigJson.parse(PT_VL.replace("\"num_heads\": 16", "\"num_heads\": 3"), "c"));
    assertTrue(heads.getMessage().startsWith("vision_config.num_heads"), heads.getMessage());
    ConfigException freq =
        assertThrows(
            ConfigException.class,
            () ->
                ModelConfigJson.parse(
                    PT_VL.replace("\"freq_allocation\": 20", "\"freq_allocation\": 21"), "c"));
    assertTrue(freq.getMessage().startsWith("freq_allocation"), freq.getMessage());
  }

  @Test
  void presetsHaveSmallTowersAndTheRealOneIsTheRelease() {
    VisionConfig tiny = ModelPresets.get("tiny").vision().orElseThrow();
    assertEquals(
        List.of(2, 32, 2, 14, 2),
        List.of(tiny.depth(), tiny.width(), tiny.heads(), tiny.patchSize(), tiny.spatialMerge()));
    assertEquals(new ImageTokenIds(7, 8, 9, 10, 11), tiny.tokens(), "the byte tokenizer's ids");
    VisionConfig real = ModelPresets.get("ernie-4.5-vl-28b-a3b").vision().orElseThrow();
    assertEquals(101304, real.tokens().start());
    assertEquals(100295, real.tokens().placeholder());
    // 32 blocks of 19,677,440, patch embedding 752,640, final LayerNorm 2,560, resampler
    // 144,225,280
    assertEquals(774_658_560L, real.parameters(2560));
  }
}
