package dev.pdserve.loadgen.cluster;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What the cluster did during a run, from two {@link ClusterSnapshot}s: nodes per role before and
 * after, and the change of the nodes' counters (KV bytes moved, KV send time, role switches; and,
 * when the workers serve a vision model, images encoded, encoder time per image and encoder-cache
 * hits, prefill and decode roles together). A figure the cluster does not expose is reported as
 * unavailable with the reason — never as 0; the vision figures are left out when no node exports
 * them.
 */
public final class ClusterReport {
  /** A figure: its value, or why it is unavailable. */
  public record Figure(String key, String label, Double value, String unavailable) {}

  private final ClusterSnapshot before;
  private final ClusterSnapshot after;
  private final List<Figure> figures;

  private static final String[] VISION_ROLES = {"pdserve_prefill_", "pdserve_decode_"};

  public ClusterReport(ClusterSnapshot before, ClusterSnapshot after) {
    this.before = before;
    this.after = after;
    double[] send = delta("pdserve_kv_transfer_send_seconds_sum");
    double[] sends = delta("pdserve_kv_transfer_send_seconds_count");
    List<Figure> all = new ArrayList<>();
    all.addAll(
        List.of(
            figure(
                "kv_transfer_sent_bytes",
                "KV bytes sent (prefill → decode)",
                delta(
                    "pdserve_kv_transfer_sent_bytes_sum",
                    "pdserve_kv_transfer_sent_bytes_total",
                    "pdserve_kv_transfer_sent_bytes"),
                "pdserve_kv_transfer_sent_bytes"),
            figure(
                "kv_transfer_received_bytes",
                "KV bytes received",
                delta(
                    "pdserve_kv_transfer_received_bytes_sum",
                    "pdserve_kv_transfer_received_bytes_total",
                    "pdserve_kv_transfer_received_bytes"),
                "pdserve_kv_transfer_received_bytes"),
            figure("kv_transfers", "KV transfers", sends, "pdserve_kv_transfer_send_seconds"),
            figure(
                "kv_transfer_send_seconds",
                "KV send time, total (s)",
                send,
                "pdserve_kv_transfer_send_seconds"),
            figure(
                "kv_transfer_mean_ms",
                "KV send time, mean per transfer (ms)",
                send == null || sends == null
                    ? null
                    : new double[] {sends[0] > 0 ? send[0] / sends[0] * 1000 : 0},
                "pdserve_kv_transfer_send_seconds"),
            figure(
                "role_switches",
                "Role switches",
                delta("pdserve_role_switches_total", "pdserve_role_switches"),
                "pdserve_role_switches")));
    if (exportsAny(vision("vision_images_encoded_total"))) {
      all.addAll(visionFigures());
    }
    this.figures = List.copyOf(all);
  }

  /** Images encoded, encoder time per image and encoder-cache hits, over both worker roles. */
  private List<Figure> visionFigures() {
    double[] images = deltaOfEach(vision("vision_images_encoded_total"));
    double[] seconds = deltaOfEach(vision("vision_encoder_seconds_sum"));
    double[] timed = deltaOfEach(vision("vision_encoder_seconds_count"));
    double[] hits = deltaOfEach(vision("vision_encoder_cache_hits_total"));
    Figure perImage;
    if (seconds == null || timed == null) {
      perImage =
          figure(
              "vision_encoder_ms_per_image",
              "Vision encoder time per image (ms)",
              null,
              "pdserve_prefill_vision_encoder_seconds");
    } else if (timed[0] == 0) {
      perImage =
          new Figure(
              "vision_encoder_ms_per_image",
              "Vision encoder time per image (ms)",
              null,
              "no image went through the encoder during the run");
    } else {
      perImage =
          new Figure(
              "vision_encoder_ms_per_image",
              "Vision encoder time per image (ms)",
              seconds[0] / timed[0] * 1000,
              null);
    }
    return List.of(
        figure(
            "vision_images_encoded",
            "Images encoded (vision encoder)",
            images,
            "pdserve_prefill_vision_images_encoded_total"),
        perImage,
        figure(
            "vision_encoder_cache_hits",
            "Vision encoder-cache hits",
            hits,
            "pdserve_prefill_vision_encoder_cache_hits_total"));
  }

  private static String[] vision(String suffix) {
    String[] out = new String[VISION_ROLES.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = VISION_ROLES[i] + suffix;
    }
    return out;
  }

  private boolean exportsAny(String... names) {
    for (Map<String, Double> m : after.metrics().values()) {
      for (String n : names) {
        if (m.containsKey(n)) {
          return true;
        }
      }
    }
    return false;
  }

  /** Sum of {@link #delta} over every name some node exports; null if none is exported. */
  private double[] deltaOfEach(String... names) {
    double[] sum = null;
    for (String n : names) {
      double[] d = delta(n);
      if (d != null) {
        sum = new double[] {(sum == null ? 0 : sum[0]) + d[0]};
      }
    }
    return sum;
  }

  private Figure figure(String key, String label, double[] value, String metric) {
    if (value != null) {
      return new Figure(key, label, value[0], null);
    }
    return new Figure(key, label, null, whyUnavailable(metric));
  }

  private String whyUnavailable(String metric) {
    if (after.error() != null || before.error() != null) {
      return after.error() != null ? after.error() : before.error();
    }
    if (after.nodes().stream().allMatch(n -> n.metricsUrl().isEmpty())) {
      return "no node exposes a metrics_url";
    }
    if (after.metrics().isEmpty()) {
      return "no node's metrics could be scraped: " + after.scrapeErrors();
    }
    return metric + " is not exported by any node";
  }

  /** Sum over nodes of after − before for the first name any node exports; null if none does. */
  private double[] delta(String... names) {
    for (String name : names) {
      boolean seen = false;
      double sum = 0;
      for (Map.Entry<String, Map<String, Double>> e : after.metrics().entrySet()) {
        Double a = e.getValue().get(name);
        if (a == null) {
          continue;
        }
        seen = true;
        Double b = before.metrics().getOrDefault(e.getKey(), Map.of()).get(name);
        sum += a - (b == null ? 0 : b);
      }
      if (seen) {
        return new double[] {sum};
      }
    }
    return null;
  }

  public List<Figure> figures() {
    return figures;
  }

  public static Map<String, Integer> perRole(ClusterSnapshot s, boolean activeOnly) {
    Map<String, Integer> m = new TreeMap<>();
    for (ClusterSnapshot.Node n : s.nodes()) {
      if (!activeOnly || n.state().equalsIgnoreCase("ACTIVE")) {
        m.merge(n.role(), 1, Integer::sum);
      }
    }
    return m;
  }

  public ObjectNode toJson(ObjectMapper json) {
    ObjectNode o = json.createObjectNode();
    for (var e : List.of(Map.entry("before", before), Map.entry("after", after))) {
      ObjectNode side = json.createObjectNode();
      if (e.getValue().error() != null) {
        side.put("error", e.getValue().error());
      }
      side.set("nodes_per_role", json.valueToTree(perRole(e.getValue(), false)));
      side.set("active_per_role", json.valueToTree(perRole(e.getValue(), true)));
      Map<String, String> states = new LinkedHashMap<>();
      e.getValue().nodes().forEach(n -> states.put(n.id(), n.role() + "/" + n.state()));
      side.set("nodes", json.valueToTree(states));
      if (!e.getValue().scrapeErrors().isEmpty()) {
        side.set("scrape_errors", json.valueToTree(e.getValue().scrapeErrors()));
      }
      o.set(e.getKey(), side);
    }
    ObjectNode f = o.putObject("during_run");
    for (Figure fig : figures) {
      ObjectNode v = f.putObject(fig.key());
      if (fig.value() != null) {
        v.put("value", fig.value());
      } else {
        v.put("unavailable", fig.unavailable());
      }
    }
    return o;
  }

  public ClusterSnapshot before() {
    return before;
  }

  public ClusterSnapshot after() {
    return after;
  }
}
