package dev.pdserve.core.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.cluster.ExpertPlacement.ExpertKey;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ExpertPlacementTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");

  static int moeLayers(ModelConfig m) {
    return (int) m.layerKinds().stream().filter(k -> k == LayerKind.MOE).count();
  }

  @Test
  void twoShardsSplitEveryMoeLayerAndBothGroups() {
    ExpertPlacement p =
        ExpertPlacement.fromShardRanges(
            TINY,
            Map.of("shard-a", ExpertRange.parse("0-31"), "shard-b", ExpertRange.parse("32-63")));
    assertEquals(0, p.version(), "built, not yet published");
    assertEquals(Set.of("shard-a", "shard-b"), p.shardIds());
    int firstMoe = TINY.layerKinds().indexOf(LayerKind.MOE);
    assertEquals(List.of("shard-a"), p.shardsFor(firstMoe, ExpertGroup.TEXT, 0));
    assertEquals(List.of("shard-a"), p.shardsFor(firstMoe, ExpertGroup.VISION, 31));
    assertEquals(List.of("shard-b"), p.shardsFor(TINY.numLayers() - 1, ExpertGroup.TEXT, 32));
    assertEquals(
        List.of(), p.shardsFor(0, ExpertGroup.TEXT, 0), "layer 0 is dense: nothing to place");
    assertEquals(List.of(), p.shardsFor(firstMoe, ExpertGroup.TEXT, 64), "no such expert");
    assertEquals(moeLayers(TINY) * 2 * 32, p.expertsOn("shard-a").size());
    assertEquals(new ExpertKey(firstMoe, ExpertGroup.TEXT, 0), p.expertsOn("shard-a").get(0));
  }

  @Test
  void overlappingRangesReplicateHotExperts() {
    ExpertPlacement p =
        ExpertPlacement.fromShardRanges(
            TINY,
            Map.of(
                "shard-a",
                ExpertRange.parse("0-31"),
                "shard-b",
                ExpertRange.parse("32-63"),
                "shard-hot",
                ExpertRange.parse("30-33")));
    assertEquals(List.of("shard-a", "shard-hot"), p.shardsFor(1, ExpertGroup.TEXT, 31));
    assertEquals(List.of("shard-b", "shard-hot"), p.shardsFor(1, ExpertGroup.VISION, 32));
    assertEquals(List.of("shard-a"), p.shardsFor(1, ExpertGroup.TEXT, 29));
  }

  @Test
  void uncoveredExpertsAreNamed() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                ExpertPlacement.fromShardRanges(
                    TINY, Map.of("shard-a", ExpertRange.parse("0-31"))));
    assertTrue(
        e.getMessage().startsWith("no shard hosts 64 expert(s), e.g. text expert 32"),
        e.getMessage());
  }

  @Test
  void aRangeOutsideEveryGroupIsRefused() {
    IllegalArgumentException e =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                ExpertPlacement.fromShardRanges(
                    TINY,
                    Map.of(
                        "shard-a",
                        ExpertRange.parse("0-63"),
                        "shard-z",
                        ExpertRange.parse("64-127"))));
    assertTrue(
        e.getMessage().startsWith("shard shard-z: expert range 64-127 is outside every group"),
        e.getMessage());
  }

  @Test
  void valueSemantics() {
    ExpertPlacement p =
        ExpertPlacement.fromShardRanges(TINY, Map.of("s", ExpertRange.parse("0-63")));
    assertEquals(
        p.withVersion(3),
        ExpertPlacement.fromShardRanges(TINY, Map.of("s", ExpertRange.parse("0-63")))
            .withVersion(3));
    assertThrows(UnsupportedOperationException.class, () -> p.shards().clear());
    assertThrows(
        IllegalArgumentException.class,
        () -> new ExpertPlacement(1, Map.of(new ExpertKey(1, 0, 0), List.of())));
  }
}
