package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@code pdserve.model.low-bit-dummy-weights}: off unless set, read as a boolean naming the key.
 */
class LowBitDummyWeightsConfigTest {
  @Test
  void offUnlessSetAndReadFromTheKey() {
    assertFalse(NodeConfigLoader.fromMap(Map.of("role", "decode")).engine().lowBitDummyWeights());
    NodeConfig c =
        NodeConfigLoader.fromMap(
            Map.of(
                "role",
                "expert",
                "model.quantization",
                "int4",
                NodeConfigLoader.MODEL_LOW_BIT_DUMMY_WEIGHTS,
                "true"));
    assertTrue(c.engine().lowBitDummyWeights());
    NodeConfigException bad =
        assertThrows(
            NodeConfigException.class,
            () ->
                NodeConfigLoader.fromMap(
                    Map.of("role", "decode", "model.low-bit-dummy-weights", "maybe")));
    assertTrue(bad.getMessage().contains("pdserve.model.low-bit-dummy-weights"), bad.getMessage());
    assertEquals(
        "pdserve.model.low-bit-dummy-weights", NodeConfigLoader.MODEL_LOW_BIT_DUMMY_WEIGHTS);
  }
}
