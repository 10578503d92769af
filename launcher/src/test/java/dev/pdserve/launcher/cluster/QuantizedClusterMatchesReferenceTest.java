package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.quant.QuantCompute;
import dev.pdserve.model.quant.QuantMode;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DESIGN.md invariant 1 with quantized weights ({@code pdserve.model.quantization}): greedy outputs
 * through router → prefill → Flight → decode, with the experts in the worker or on expert shards
 * (which quantize the experts they host the same way), equal the single-process reference engine's
 * in the same mode — tokens and logprobs bit for bit — and differ from the fp32 reference's.
 */
class QuantizedClusterMatchesReferenceTest {
  static LoadedModel model;
  static final Map<QuantMode, ReferenceEngine> references = new EnumMap<>(QuantMode.class);

  /** int4 computed with int8 activations ({@code pdserve.model.quantization-compute=int8}). */
  static ReferenceEngine int4Int8Compute;

  @BeforeAll
  static void loadReferences() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    for (QuantMode m : QuantMode.values()) {
      references.put(
          m,
          new ReferenceEngine(
              model, OrtRuntime.shared(), Numerics.weights(WeightQuantization.of(m))));
    }
    int4Int8Compute =
        new ReferenceEngine(
            model,
            OrtRuntime.shared(),
            Numerics.weights(WeightQuantization.of(QuantMode.INT4).withCompute(QuantCompute.INT8)));
  }

  @AfterAll
  static void close() {
    references.values().forEach(ReferenceEngine::close);
    int4Int8Compute.close();
    model.close();
  }

  @ParameterizedTest(name = "{0} weights ({4} compute), {1}P/{2}D/{3}E in one JVM")
  @CsvSource({
    "INT8,1,1,0,FP32",
    "INT8,1,1,2,FP32",
    "INT4,1,1,0,FP32",
    "INT4,1,1,2,FP32",
    "INT4,1,1,2,INT8",
    "INT2_MIXED,1,1,0,FP32",
    "INT2_MIXED,1,1,2,FP32"
  })
  void topologyMatchesTheReferenceInTheSameMode(
      QuantMode mode, int prefill, int decode, int shards, QuantCompute compute) throws Exception {
    Map<String, String> settings =
        Map.of(
            "model.quantization",
            mode.configName(),
            "model.quantization-compute",
            compute.configName(),
            "prefill.chunk-tokens",
            "128");
    ReferenceEngine reference =
        compute == QuantCompute.INT8 ? int4Int8Compute : references.get(mode);
    assertEquals(
        new WeightQuantization(mode, WeightQuantization.DEFAULT_BLOCK_SIZE, compute),
        reference.runner().numerics().weights());
    try (InJvmCluster c = InJvmCluster.start(prefill, decode, shards, settings)) {
      int differFromFp32 = 0;
      for (GenerateRequest asked : ClusterMatchesReferenceTest.prompts()) {
        GenerateRequest r = HalfKvClusterMatchesReferenceTest.withLogprobs(asked);
        List<Integer> ids = new ArrayList<>();
        List<Float> logprobs = new ArrayList<>();
        Iterator<GenerateResponse> it = c.blocking().generate(r);
        boolean completed = false;
        while (it.hasNext()) {
          GenerateResponse g = it.next();
          if (g.hasDelta()) {
            ids.addAll(g.getDelta().getTokenIdsList());
            logprobs.addAll(g.getDelta().getLogprobsList());
          }
          completed |= g.hasCompletion();
        }
        assertTrue(completed, r.getRequestId() + " ended without a completion");
        GenerateResult want = ClusterMatchesReferenceTest.referenceResult(reference, r);
        assertArrayEquals(
            want.tokenIds(),
            ids.stream().mapToInt(Integer::intValue).toArray(),
            "cluster tokens differ from the " + mode + " reference for " + r.getRequestId());
        double[] fp32 =
            ClusterMatchesReferenceTest.referenceResult(references.get(QuantMode.NONE), r)
                .logprobs();
        assertEquals(want.logprobs().length, logprobs.size(), r.getRequestId() + " logprobs");
        for (int i = 0; i < logprobs.size(); i++) {
          assertEquals(
              (float) want.logprobs()[i],
              logprobs.get(i),
              r.getRequestId() + " token " + i + ": cluster logprob vs the " + mode + " reference");
          differFromFp32 += i < fp32.length && (float) fp32[i] != logprobs.get(i) ? 1 : 0;
        }
      }
      assertTrue(
          differFromFp32 > 0,
          "every logprob equals fp32's: the cluster cannot have run " + mode + " weights");
      c.awaitNoKvHeld();
    }
  }
}
