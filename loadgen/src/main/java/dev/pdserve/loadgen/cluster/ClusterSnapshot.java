package dev.pdserve.loadgen.cluster;

import java.util.List;
import java.util.Map;

/**
 * The cluster as the router's admin API and the nodes' {@code /metrics} showed it at one moment.
 *
 * @param nodes every node the router knew of
 * @param metrics per node id, metric name → value summed over labels (only nodes that were scraped)
 * @param error why the node list could not be read, or null
 * @param scrapeErrors per node id, why its metrics could not be read
 */
public record ClusterSnapshot(
    List<Node> nodes,
    Map<String, Map<String, Double>> metrics,
    String error,
    Map<String, String> scrapeErrors) {
  /** One node of {@code ListNodes}. */
  public record Node(String id, String role, String state, String metricsUrl) {}
}
