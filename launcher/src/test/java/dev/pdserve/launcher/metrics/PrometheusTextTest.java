package dev.pdserve.launcher.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/** The test parser is strict: it refuses what Prometheus would refuse or misread. */
class PrometheusTextTest {
  static final String GOOD =
      """
      # HELP vllm:ttft_seconds Time to first token.
      # TYPE vllm:ttft_seconds histogram
      vllm:ttft_seconds_bucket{model_name="tiny",le="0.1"} 1
      vllm:ttft_seconds_bucket{model_name="tiny",le="1.0"} 3
      vllm:ttft_seconds_bucket{model_name="tiny",le="+Inf"} 3
      vllm:ttft_seconds_count{model_name="tiny"} 3
      vllm:ttft_seconds_sum{model_name="tiny"} 0.9
      # HELP reqs_total Requests.
      # TYPE reqs_total counter
      reqs_total{reason="a \\"quoted\\" one"} 2.0
      reqs_total{reason="b"} 1.0
      """;

  @Test
  void readsFamiliesSamplesAndLabels() {
    PrometheusText t = PrometheusText.parse(GOOD);
    assertEquals("histogram", t.family("vllm:ttft_seconds").type());
    assertEquals(3, t.sum("vllm:ttft_seconds_count", Map.of("model_name", "tiny")));
    assertEquals(3, t.sum("reqs_total"));
    assertEquals(2, t.sum("reqs_total", Map.of("reason", "a \"quoted\" one")));
  }

  @Test
  void refusesMalformedExpositions() {
    String[] bad = {
      GOOD.replace("# TYPE reqs_total counter\n", ""), // sample before its TYPE
      GOOD.replace("le=\"1.0\"} 3", "le=\"1.0\"} 0"), // buckets not cumulative
      GOOD.replace("le=\"+Inf\"", "le=\"5.0\""), // no +Inf bucket
      GOOD.replace(
          "_count{model_name=\"tiny\"} 3", "_count{model_name=\"tiny\"} 4"), // +Inf != _count
      GOOD.replace(
          "reqs_total{reason=\"b\"} 1.0", "reqs_total{reason=b} 1.0"), // unquoted label value
      GOOD.replace(
          "reqs_total{reason=\"b\"} 1.0", "reqs_total{reason=\"b\"} one"), // value not a number
      GOOD.replace(
          "reqs_total{reason=\"b\"}",
          "reqs_total{reason=\"a \\\"quoted\\\" one\"}"), // a series twice
      GOOD.replace(
          "reqs_total{reason=\"b\"}",
          "reqs_bucket{reason=\"b\"}"), // a suffix its type does not allow
      GOOD.strip(), // no final newline
    };
    for (String text : bad) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> PrometheusText.parse(text), text);
      assertTrue(!e.getMessage().isEmpty());
    }
  }
}
