package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Merging summaries adds histograms: the merge of two runs equals one run over the union of their
 * requests.
 */
class BenchSummaryMergeTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final List<Double> PS = List.of(50.0, 90.0, 99.0, 99.9);

  static List<RequestResult> results(int n, long seed, long sendOffsetNanos) {
    SplittableRandom r = new SplittableRandom(seed);
    List<RequestResult> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      if (i % 37 == 5) {
        out.add(
            new RequestResult(
                i,
                0,
                "r" + i,
                sendOffsetNanos + i * 1_000_000L,
                -1,
                3_000_000,
                new long[0],
                10,
                0,
                0,
                i % 2 == 0 ? "UNAVAILABLE" : "RESOURCE_EXHAUSTED",
                "x",
                ""));
        continue;
      }
      int out1 = 1 + r.nextInt(40);
      long ttft = (long) (r.nextDouble() * r.nextDouble() * 900e6) + 1_000_000;
      long[] itl = new long[out1 - 1];
      long e2e = ttft;
      for (int k = 0; k < itl.length; k++) {
        itl[k] = 2_000_000 + r.nextLong(30_000_000);
        e2e += itl[k];
      }
      out.add(
          new RequestResult(
              i,
              0,
              "r" + i,
              sendOffsetNanos + i * 1_000_000L,
              ttft,
              e2e,
              itl,
              5 + r.nextInt(50),
              out1,
              r.nextInt(3),
              RequestResult.OK,
              "",
              "length"));
    }
    return out;
  }

  @Test
  void mergeOfTwoJsonSummariesEqualsOneRunOverTheUnion() {
    Map<String, Double> slos = Map.of("ttft", 400.0, "tpot", 20.0);
    List<RequestResult> a = results(700, 1, 0);
    List<RequestResult> b = results(500, 2, 0);
    // two processes over the same 10 s window
    BenchSummary sa = BenchSummary.of(a, 1_000_000, 10.0, slos);
    BenchSummary sb = BenchSummary.of(b, 1_000_000, 10.0, slos);
    List<RequestResult> union = new ArrayList<>(a);
    union.addAll(b);
    BenchSummary su = BenchSummary.of(union, 1_000_000, 10.0, slos);

    // through JSON, as bench merge reads them
    BenchSummary ra = BenchSummary.fromJson(JSON.valueToTree(sa.toJson(JSON, PS)), "a.json");
    BenchSummary rb = BenchSummary.fromJson(JSON.valueToTree(sb.toJson(JSON, PS)), "b.json");
    BenchSummary merged = BenchSummary.merge(List.of(ra, rb));
    JsonNode m = merged.toJson(JSON, PS);
    JsonNode u = su.toJson(JSON, PS);

    assertEquals(2, m.get("runs").asInt());
    for (String k :
        List.of(
            "completed",
            "failed",
            "num_requests",
            "total_input_tokens",
            "total_output_tokens",
            "cached_tokens",
            "good_requests",
            "duration",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "request_goodput")) {
      assertEquals(u.get(k).asDouble(), m.get(k).asDouble(), 1e-9, k);
    }
    assertEquals(u.get("failures"), m.get("failures"));
    for (String metric : BenchSummary.METRICS) {
      assertEquals(
          su.latency.get(metric).count(),
          merged.latency.get(metric).count(),
          "histogram count of " + metric);
      assertEquals(
          su.latency.get(metric).histogram(),
          merged.latency.get(metric).histogram(),
          "histogram of " + metric);
      for (String stat : List.of("mean", "median", "std", "max", "p50", "p90", "p99", "p99.9")) {
        String key = stat + "_" + metric + "_ms";
        assertEquals(u.get(key).asDouble(), m.get(key).asDouble(), 1e-6, key);
      }
    }
    assertTrue(su.latency.get("itl").count() > 10_000, "ITL has a sample per token gap");
  }

  @Test
  void mergeSpansEarliestStartToLatestFinish() {
    BenchSummary a = BenchSummary.of(results(10, 1, 0), 10_000, 5.0, Map.of());
    BenchSummary b = BenchSummary.of(results(10, 2, 0), 12_000, 5.0, Map.of());
    assertEquals(7.0, BenchSummary.merge(List.of(a, b)).durationSeconds, 1e-9);
  }

  @Test
  void summariesWithDifferentSlosDoNotMerge() {
    BenchSummary a = BenchSummary.of(results(10, 1, 0), 0, 5.0, Map.of("ttft", 100.0));
    BenchSummary b = BenchSummary.of(results(10, 2, 0), 0, 5.0, Map.of("ttft", 200.0));
    assertTrue(
        assertThrows(IllegalArgumentException.class, () -> BenchSummary.merge(List.of(a, b)))
            .getMessage()
            .contains("--goodput"));
    assertTrue(
        assertThrows(
                IllegalArgumentException.class,
                () -> BenchSummary.fromJson(JSON.createObjectNode(), "x.json"))
            .getMessage()
            .contains("x.json"));
  }

  @Test
  void figuresFollowTheirDefinitions() {
    long ms = 1_000_000;
    List<RequestResult> rs =
        List.of(
            new RequestResult(
                0,
                0,
                "a",
                0,
                100 * ms,
                500 * ms,
                new long[] {100 * ms, 150 * ms, 150 * ms, 0},
                10,
                5,
                0,
                RequestResult.OK,
                "",
                "length"),
            new RequestResult(
                1,
                0,
                "b",
                0,
                300 * ms,
                300 * ms,
                new long[0],
                20,
                1,
                0,
                RequestResult.OK,
                "",
                "length"),
            new RequestResult(
                2, 0, "c", 0, -1, 10 * ms, new long[0], 30, 0, 0, "INVALID_ARGUMENT", "bad", ""));
    BenchSummary s = BenchSummary.of(rs, 0, 2.0, Map.of("ttft", 200.0));
    assertEquals(2, s.completed);
    assertEquals(1, s.failed);
    assertEquals(Map.of("INVALID_ARGUMENT", 1L), s.failures);
    assertEquals(30, s.totalInputTokens, "failed requests' tokens are not counted");
    assertEquals(6, s.totalOutputTokens);
    assertEquals(1.0, s.requestThroughput(), 1e-9);
    assertEquals(1, s.goodRequests, "only a meets ttft <= 200 ms");
    assertEquals(0.5, s.requestGoodput(), 1e-9);
    assertEquals(1, s.latency.get("tpot").count(), "TPOT needs two or more tokens");
    assertEquals(100.0, s.latency.get("tpot").meanMs(), 0.1, "(500-100)/(5-1)");
    assertEquals(4, s.latency.get("itl").count());
    assertEquals(200.0, s.latency.get("ttft").meanMs(), 0.01);
  }
}
