package dev.pdserve.model.weights;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

class WeightValidatorTest {
  static final ModelConfig TINY = ModelPresets.get("tiny");

  /** A source that hides some tensors of another and replaces others. */
  static final class EditedWeights implements WeightSource {
    private final WeightSource base;
    private final Predicate<String> hidden;
    private final Map<String, FloatTensor> replaced = new HashMap<>();

    EditedWeights(WeightSource base, Predicate<String> hidden) {
      this.base = base;
      this.hidden = hidden;
    }

    EditedWeights replace(FloatTensor t) {
      replaced.put(t.name(), t);
      return this;
    }

    @Override
    public Optional<FloatTensor> find(String name) {
      if (replaced.containsKey(name)) {
        return Optional.of(replaced.get(name));
      }
      return hidden.test(name) ? Optional.empty() : base.find(name);
    }

    @Override
    public Set<String> names() {
      Set<String> out = new LinkedHashSet<>(base.names());
      out.removeIf(hidden);
      out.addAll(replaced.keySet());
      return out;
    }

    @Override
    public String describe() {
      return "edited " + base.describe();
    }
  }

  static FloatTensor filled(String name, float value, long... shape) {
    int n = (int) Arrays.stream(shape).reduce(1, (a, b) -> a * b);
    FloatBuffer b = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    for (int i = 0; i < n; i++) {
      b.put(i, value);
    }
    return new FloatTensor(name, shape, b);
  }

  @Test
  void dummyWeightsFitTheirConfig() {
    assertDoesNotThrow(() -> WeightValidator.check(TINY, new DummyWeights(TINY, 7)));
  }

  @Test
  void missingAndMisShapedTensorsAreEachNamed() {
    String gone = "model.layers.3.mlp.experts.70.down_proj.weight";
    String k = WeightNames.k(1);
    WeightSource src =
        new EditedWeights(new DummyWeights(TINY, 7), gone::equals).replace(filled(k, 0.1f, 64, 64));
    WeightException e = assertThrows(WeightException.class, () -> WeightValidator.check(TINY, src));
    assertEquals(
        List.of(
            "tensor model.layers.1.self_attn.k_proj.weight has shape [64, 64], expected [32, 64]",
            "missing tensor " + gone),
        e.problems());
    assertTrue(e.getMessage().contains("do not fit model tiny: 2 problems"), e.getMessage());
    assertTrue(e.getMessage().contains("\n  missing tensor " + gone), e.getMessage());
  }

  @Test
  void nonFiniteValuesInSmallTensorsAreReported() {
    FloatTensor norm = filled(WeightNames.postNorm(2), 1f, TINY.hidden());
    norm.data().put(9, Float.NaN);
    norm.data().put(11, Float.POSITIVE_INFINITY);
    WeightSource src = new EditedWeights(new DummyWeights(TINY, 7), n -> false).replace(norm);
    WeightException e = assertThrows(WeightException.class, () -> WeightValidator.check(TINY, src));
    assertEquals(
        List.of(
            "tensor model.layers.2.post_attention_layernorm.weight holds 2 non-finite values (first at index 9: NaN)"),
        e.problems());
  }

  @Test
  void longListsAreCutAfterTwentyProblems() {
    WeightSource src =
        new EditedWeights(
            new DummyWeights(TINY, 7), n -> n.startsWith("model.layers.3.mlp.experts."));
    WeightException e = assertThrows(WeightException.class, () -> WeightValidator.check(TINY, src));
    assertEquals(128 * 3, e.problems().size());
    assertEquals(
        1 + WeightValidator.MAX_LISTED + 1, e.getMessage().split("\n").length, e.getMessage());
    assertTrue(
        e.getMessage().endsWith("\n  ... and " + (128 * 3 - WeightValidator.MAX_LISTED) + " more"),
        e.getMessage());
  }
}
