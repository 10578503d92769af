package dev.pdserve.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.loadgen.cluster.ClusterReport;
import dev.pdserve.loadgen.cluster.ClusterSnapshot;
import dev.pdserve.loadgen.cluster.PrometheusText;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Cluster figures are deltas of the nodes' counters over the run, or unavailable with a reason. */
class ClusterReportTest {
  private static final List<ClusterSnapshot.Node> NODES =
      List.of(
          new ClusterSnapshot.Node("p0", "prefill", "ACTIVE", "http://127.0.0.1:1/metrics"),
          new ClusterSnapshot.Node("d0", "decode", "ACTIVE", "http://127.0.0.1:2/metrics"));

  @Test
  void prometheusTextIsSummedOverLabels() {
    Map<String, Double> m =
        PrometheusText.sumByName(
            """
        # HELP pdserve_kv_transfer_sent_bytes_total KV bytes sent
        # TYPE pdserve_kv_transfer_sent_bytes_total counter
        pdserve_kv_transfer_sent_bytes_total{peer="d0"} 1000
        pdserve_kv_transfer_sent_bytes_total{peer="d1",note="a b}"} 24
        pdserve_kv_transfer_send_seconds_bucket{le="+Inf"} 3
        pdserve_kv_transfer_send_seconds_sum 0.5
        pdserve_kv_transfer_send_seconds_count 3 1712345678000
        garbage line
        """);
    assertEquals(1024.0, m.get("pdserve_kv_transfer_sent_bytes_total"));
    assertEquals(0.5, m.get("pdserve_kv_transfer_send_seconds_sum"));
    assertEquals(3.0, m.get("pdserve_kv_transfer_send_seconds_count"));
    assertEquals(3.0, m.get("pdserve_kv_transfer_send_seconds_bucket"));
  }

  @Test
  void figuresAreDeltasOverTheRun() {
    ClusterSnapshot before =
        new ClusterSnapshot(
            NODES,
            Map.of(
                "p0",
                    Map.of(
                        "pdserve_kv_transfer_sent_bytes_total",
                        100.0,
                        "pdserve_kv_transfer_send_seconds_sum",
                        1.0,
                        "pdserve_kv_transfer_send_seconds_count",
                        10.0),
                "d0", Map.of("pdserve_role_switches_total", 1.0)),
            null,
            Map.of());
    ClusterSnapshot after =
        new ClusterSnapshot(
            NODES,
            Map.of(
                "p0",
                    Map.of(
                        "pdserve_kv_transfer_sent_bytes_total",
                        4196.0,
                        "pdserve_kv_transfer_send_seconds_sum",
                        3.0,
                        "pdserve_kv_transfer_send_seconds_count",
                        20.0),
                "d0", Map.of("pdserve_role_switches_total", 2.0)),
            null,
            Map.of());
    Map<String, ClusterReport.Figure> f = new HashMap<>();
    new ClusterReport(before, after).figures().forEach(x -> f.put(x.key(), x));
    assertEquals(4096.0, f.get("kv_transfer_sent_bytes").value());
    assertEquals(10.0, f.get("kv_transfers").value());
    assertEquals(2.0, f.get("kv_transfer_send_seconds").value());
    assertEquals(200.0, f.get("kv_transfer_mean_ms").value(), 1e-9);
    assertEquals(1.0, f.get("role_switches").value());
    assertNull(f.get("kv_transfer_received_bytes").value());
    assertTrue(
        f.get("kv_transfer_received_bytes").unavailable().contains("not exported"),
        f.get("kv_transfer_received_bytes").unavailable());
  }

  @Test
  void withoutMetricsUrlsEveryFigureSaysWhy() {
    List<ClusterSnapshot.Node> bare =
        List.of(new ClusterSnapshot.Node("p0", "prefill", "ACTIVE", ""));
    ClusterSnapshot s = new ClusterSnapshot(bare, Map.of(), null, Map.of());
    for (ClusterReport.Figure f : new ClusterReport(s, s).figures()) {
      assertNull(f.value(), f.key());
      assertEquals("no node exposes a metrics_url", f.unavailable());
    }
    assertEquals(Map.of("prefill", 1), ClusterReport.perRole(s, true));
  }

  @Test
  void visionFiguresAddBothRolesAndAreLeftOutWhenNoNodeExportsThem() {
    ClusterSnapshot before =
        new ClusterSnapshot(
            NODES,
            Map.of(
                "p0",
                Map.of(
                    "pdserve_prefill_vision_images_encoded_total", 2.0,
                    "pdserve_prefill_vision_encoder_seconds_sum", 0.5,
                    "pdserve_prefill_vision_encoder_seconds_count", 2.0,
                    "pdserve_prefill_vision_encoder_cache_hits_total", 1.0),
                "d0",
                Map.of(
                    "pdserve_decode_vision_images_encoded_total", 0.0,
                    "pdserve_decode_vision_encoder_seconds_sum", 0.0,
                    "pdserve_decode_vision_encoder_seconds_count", 0.0,
                    "pdserve_decode_vision_encoder_cache_hits_total", 0.0)),
            null,
            Map.of());
    ClusterSnapshot after =
        new ClusterSnapshot(
            NODES,
            Map.of(
                "p0",
                Map.of(
                    "pdserve_prefill_vision_images_encoded_total", 8.0,
                    "pdserve_prefill_vision_encoder_seconds_sum", 2.0,
                    "pdserve_prefill_vision_encoder_seconds_count", 8.0,
                    "pdserve_prefill_vision_encoder_cache_hits_total", 4.0),
                "d0",
                Map.of(
                    "pdserve_decode_vision_images_encoded_total", 2.0,
                    "pdserve_decode_vision_encoder_seconds_sum", 0.5,
                    "pdserve_decode_vision_encoder_seconds_count", 2.0,
                    "pdserve_decode_vision_encoder_cache_hits_total", 1.0)),
            null,
            Map.of());
    Map<String, ClusterReport.Figure> f = new HashMap<>();
    new ClusterReport(before, after).figures().forEach(x -> f.put(x.key(), x));
    assertEquals(8.0, f.get("vision_images_encoded").value(), "6 on the prefill node, 2 on decode");
    assertEquals(
        250.0,
        f.get("vision_encoder_ms_per_image").value(),
        1e-9,
        "2 s over 8 images: 1.5 s on prefill and 0.5 s on decode");
    assertEquals(4.0, f.get("vision_encoder_cache_hits").value(), "3 on prefill and 1 on decode");

    ClusterReport idle = new ClusterReport(after, after);
    ClusterReport.Figure perImage =
        idle.figures().stream()
            .filter(x -> x.key().equals("vision_encoder_ms_per_image"))
            .findFirst()
            .orElseThrow();
    assertNull(perImage.value(), "no image encoded: no time per image, not 0");
    assertEquals("no image went through the encoder during the run", perImage.unavailable());

    ClusterSnapshot text =
        new ClusterSnapshot(
            NODES, Map.of("p0", Map.of("pdserve_role_switches_total", 0.0)), null, Map.of());
    assertTrue(
        new ClusterReport(text, text)
            .figures().stream().noneMatch(x -> x.key().startsWith("vision")),
        "a text-only cluster's report has no vision rows");
  }
}
