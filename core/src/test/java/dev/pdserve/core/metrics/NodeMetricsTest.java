package dev.pdserve.core.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Real HTTP endpoints on 127.0.0.1:0, scraped with java.net.http. */
class NodeMetricsTest {
  static String get(String url) throws Exception {
    HttpResponse<String> r =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create(url)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode());
    return r.body();
  }

  @Test
  void nodesInOneJvmKeepTheirOwnRegistriesAndEndpoints() throws Exception {
    try (NodeMetrics a = new NodeMetrics("a", "127.0.0.1", "127.0.0.1", 0, "tiny").start();
        NodeMetrics b = new NodeMetrics("b", "127.0.0.1", "127.0.0.1", 0, "tiny").start()) {
      assertNotEquals(a.port(), b.port());
      assertEquals("http://127.0.0.1:" + a.port() + "/metrics", a.url());
      a.counter(MetricNames.GENERATION_TOKENS, "tokens").inc(5);
      b.counter(MetricNames.GENERATION_TOKENS, "tokens").inc(2);
      a.counter("pdserve_test_events", "events").inc();
      String pa = get(a.url());
      String pb = get(b.url());
      assertTrue(pa.contains("vllm:generation_tokens_total{model_name=\"tiny\"} 5.0"), pa);
      assertTrue(pb.contains("vllm:generation_tokens_total{model_name=\"tiny\"} 2.0"), pb);
      assertTrue(
          pa.contains("pdserve_test_events_total 1.0"),
          "pdserve_ names carry no model_name label: " + pa);
      assertFalse(pb.contains("pdserve_test_events"), "b's registry has only b's metrics: " + pb);
    }
  }

  @Test
  void aTakenPortIsAnErrorNamingTheSetting() throws Exception {
    try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        NodeMetrics m =
            new NodeMetrics("a", "127.0.0.1", "127.0.0.1", taken.getLocalPort(), "tiny")) {
      IOException e = assertThrows(IOException.class, m::start);
      assertTrue(
          e.getMessage().contains("pdserve.metrics.port")
              && e.getMessage().contains(Integer.toString(taken.getLocalPort())),
          e.getMessage());
    }
  }

  @Test
  void latencyBucketsAscendAndKeepVllmsBounds() {
    double[] vllmTtft = {
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
      20.0, 40.0, 80.0, 160.0, 640.0, 2560.0
    };
    double[] vllmItl = {
      0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
      40.0, 80.0
    };
    for (double[] b :
        new double[][] {
          MetricBuckets.TIME_TO_FIRST_TOKEN,
          MetricBuckets.INTER_TOKEN,
          MetricBuckets.REQUEST_LATENCY
        }) {
      for (int i = 1; i < b.length; i++) {
        assertTrue(b[i] > b[i - 1], "bounds ascend: " + Arrays.toString(b));
      }
    }
    for (double v : vllmTtft) {
      assertTrue(
          Arrays.binarySearch(MetricBuckets.TIME_TO_FIRST_TOKEN, v) >= 0, "vLLM TTFT bound " + v);
    }
    for (double v : vllmItl) {
      assertTrue(Arrays.binarySearch(MetricBuckets.INTER_TOKEN, v) >= 0, "vLLM ITL bound " + v);
    }
    assertTrue(
        Arrays.stream(MetricBuckets.INTER_TOKEN).filter(v -> v < 0.05).count() >= 10,
        "fine ITL bounds below 50 ms");
  }
}
