package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.metrics.MetricNames;
import dev.pdserve.launcher.metrics.PrometheusText;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.Numerics;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DESIGN.md invariant 1 with a half-precision KV cache ({@code pdserve.kv.dtype} fp16 / bf16): in
 * one JVM with real servers, greedy outputs through router → prefill (long prompts in chunks) →
 * Flight (2-byte elements) → decode equal the single-process reference engine's in the same mode,
 * with experts local or on shards; and the same prompts move half the KV bytes of fp32.
 */
class HalfKvClusterMatchesReferenceTest {
  /** Small enough that the ~1000-token prompt is prefilled in 8 chunks. */
  private static final int CHUNK_TOKENS = 128;

  static LoadedModel model;
  static final Map<KvDtype, ReferenceEngine> references = new EnumMap<>(KvDtype.class);

  @BeforeAll
  static void loadReferences() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    for (KvDtype d : KvDtype.values()) {
      references.put(d, new ReferenceEngine(model, OrtRuntime.shared(), Numerics.kv(d)));
    }
  }

  @AfterAll
  static void close() {
    references.values().forEach(ReferenceEngine::close);
    model.close();
  }

  static Map<String, String> settings(KvDtype dtype, Map<String, String> more) {
    Map<String, String> m = new HashMap<>(more);
    m.put("kv.dtype", dtype.configName());
    m.put("prefill.chunk-tokens", Integer.toString(CHUNK_TOKENS));
    return m;
  }

  /** {@code r} asking for the chosen token's logprob (so numerics show, not only argmaxes). */
  static GenerateRequest withLogprobs(GenerateRequest r) {
    return r.toBuilder().setParams(r.getParams().toBuilder().setLogprobs(1)).build();
  }

  /**
   * Every prompt's tokens and logprobs through the cluster equal, bit for bit, those of the
   * reference engine in {@code dtype}; returns how many logprobs differ from the fp32 reference's.
   */
  static int assertMatchesReference(InJvmCluster c, KvDtype dtype, List<GenerateRequest> prompts) {
    int differFromFp32 = 0;
    for (GenerateRequest asked : prompts) {
      GenerateRequest r = withLogprobs(asked);
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
      GenerateResult want = ClusterMatchesReferenceTest.referenceResult(references.get(dtype), r);
      assertArrayEquals(
          want.tokenIds(),
          ids.stream().mapToInt(Integer::intValue).toArray(),
          "cluster tokens differ from the " + dtype + " reference for " + r.getRequestId());
      double[] fp32 =
          ClusterMatchesReferenceTest.referenceResult(references.get(KvDtype.FP32), r).logprobs();
      assertEquals(want.logprobs().length, logprobs.size(), r.getRequestId() + " logprobs");
      for (int i = 0; i < logprobs.size(); i++) {
        assertEquals(
            (float) want.logprobs()[i],
            logprobs.get(i),
            r.getRequestId() + " token " + i + ": cluster logprob vs the " + dtype + " reference");
        differFromFp32 += i < fp32.length && (float) fp32[i] != logprobs.get(i) ? 1 : 0;
      }
    }
    return differFromFp32;
  }

  @ParameterizedTest(name = "{0} KV, {1}P/{2}D/{3}E in one JVM")
  @CsvSource({"FP16,1,1,0", "FP16,1,1,2", "BF16,1,1,0", "BF16,1,1,2"})
  void topologyMatchesTheReferenceInTheSameKvDtype(
      KvDtype dtype, int prefill, int decode, int shards) throws Exception {
    try (InJvmCluster c = InJvmCluster.start(prefill, decode, shards, settings(dtype, Map.of()))) {
      for (var w : c.prefill) {
        assertEquals(dtype, w.pool().layout().dtype(), w.id() + "'s KV pool");
      }
      int differ = assertMatchesReference(c, dtype, ClusterMatchesReferenceTest.prompts());
      assertTrue(
          differ > 0,
          "every logprob equals fp32's: the comparison cannot tell " + dtype + " KV from fp32");
      c.awaitNoKvHeld();
    }
  }

  /** Two prompts past the local-prefill threshold; the second is chunked by the prefill node. */
  static List<GenerateRequest> transferPrompts() {
    SamplingParams greedy = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(6).build();
    TokenIds.Builder mid = TokenIds.newBuilder();
    TokenIds.Builder longer = TokenIds.newBuilder();
    for (int i = 0; i < 100; i++) {
      mid.addIds(40 + i % 50);
    }
    for (int i = 0; i < 1000; i++) {
      longer.addIds(33 + (i * 7) % 90);
    }
    return List.of(
        ClusterMatchesReferenceTest.req("mid", greedy).setPromptTokenIds(mid).build(),
        ClusterMatchesReferenceTest.req("long", greedy).setPromptTokenIds(longer).build());
  }

  /** KV bytes the cluster's prefill node pushed, and its prefill steps, after {@code prompts}. */
  static double[] sentBytesAndSteps(KvDtype dtype, List<GenerateRequest> prompts) throws Exception {
    try (InJvmCluster c =
        InJvmCluster.start(
            1, 1, 0, settings(dtype, Map.of("router.local-prefill-threshold", "0")))) {
      assertMatchesReference(c, dtype, prompts);
      c.awaitNoKvHeld();
      PrometheusText m = scrape(c.prefill.get(0).metrics().url());
      return new double[] {
        m.sum(MetricNames.KV_TRANSFER_SENT_BYTES + "_sum"),
        m.sum(MetricNames.PREFILL_STEP_TOKENS + "_count")
      };
    }
  }

  @Test
  void halfKvMovesHalfTheBytesOfFp32ForTheSamePrompts() throws Exception {
    List<GenerateRequest> prompts = transferPrompts();
    double[] fp32 = sentBytesAndSteps(KvDtype.FP32, prompts);
    double[] fp16 = sentBytesAndSteps(KvDtype.FP16, prompts);
    int layerBytes32 = KvLayout.of(model.config(), KvDtype.FP32).layerBytes();
    assertTrue(
        fp32[0] >= 1100.0 / KvLayout.DEFAULT_BLOCK_SIZE * model.config().numLayers() * layerBytes32,
        "fp32 KV sent " + fp32[0] + " bytes: less than the prompts' blocks");
    assertEquals(fp32[0] / 2, fp16[0], "fp16 KV bytes sent vs half of fp32's " + fp32[0]);
    assertEquals(fp32[1], fp16[1], "the prefill node chunked the prompts differently");
    assertTrue(
        fp16[1] >= 1 + Math.ceil(1000.0 / CHUNK_TOKENS),
        "the 1000-token prompt was not prefilled in chunks: " + fp16[1] + " prefill steps");
  }

  static PrometheusText scrape(String url) throws Exception {
    HttpResponse<String> r =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), "GET " + url + ": " + r.body());
    return PrometheusText.parse(r.body());
  }
}
