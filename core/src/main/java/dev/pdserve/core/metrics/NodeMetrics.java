package dev.pdserve.core.metrics;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.auth.AccessControl;
import dev.pdserve.core.auth.HttpAuthenticator;
import dev.pdserve.core.config.NodeConfig;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.Collector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Labels;
import java.io.IOException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A node's metrics: one {@link PrometheusRegistry} (never the JVM-wide default, so several nodes in
 * one JVM keep theirs apart) and the HTTP endpoint serving it at {@code /metrics} in the Prometheus
 * text format (the client library's exporter; OpenMetrics or protobuf when a scraper asks for
 * them). A server as a testable object: {@link #start()}, {@link #port()}, {@link #close()}; port 0
 * binds any free port.
 *
 * <p>The instrument factories fix the choices once: classic histograms only (the text format has no
 * native ones) with the given bucket bounds, no exemplars (nothing to sample them from, and they
 * cost time on hot paths), and every {@code vllm:}-named metric carries a constant {@value
 * #MODEL_NAME} label, as vLLM's do, so dashboards and autoscalers written for vLLM select them.
 */
public final class NodeMetrics implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(NodeMetrics.class);

  /** The label vLLM puts on its metrics; ours carry it on the vLLM-named ones. */
  public static final String MODEL_NAME = "model_name";

  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final String nodeId;
  private final String bindHost;
  private final String advertisedHost;
  private final int configuredPort;
  private final String modelName;
  private final Labels modelLabels;
  private final ExecutorService http;
  private HTTPServer server;
  private AccessControl access = AccessControl.open();
  private volatile int port = -1;

  /** The metrics of a node: its bind and advertised host, {@code pdserve.metrics.port}. */
  public NodeMetrics(NodeConfig config, String modelName) {
    this(
        config.nodeId(),
        config.network().bindHost(),
        config.network().advertisedHost(),
        config.network().metricsPort(),
        modelName);
  }

  /**
   * @param port the HTTP port, 0 = any free port
   * @param modelName the served model's name, the {@value #MODEL_NAME} label of vLLM-named metrics
   */
  public NodeMetrics(
      String nodeId, String bindHost, String advertisedHost, int port, String modelName) {
    this.nodeId = nodeId;
    this.bindHost = bindHost;
    this.advertisedHost = advertisedHost;
    this.configuredPort = port;
    this.modelName = modelName;
    this.modelLabels = Labels.of(MODEL_NAME, modelName);
    this.http =
        Executors.newFixedThreadPool(
            2, new NamedThreadFactory("metrics-http-" + nodeId, true, nodeId));
  }

  /**
   * Who may read {@code /metrics} (set before {@link #start()}): without this, anyone; with API
   * keys on and {@code pdserve.auth.metrics-open} false, a key or the cluster token.
   */
  public synchronized NodeMetrics protectWith(AccessControl accessControl) {
    this.access = accessControl;
    return this;
  }

  /** Binds and starts serving {@code /metrics}. */
  public synchronized NodeMetrics start() throws IOException {
    if (server != null) {
      throw new IllegalStateException("metrics endpoint of " + nodeId + " already started");
    }
    try {
      HTTPServer.Builder b =
          HTTPServer.builder()
              .hostname(bindHost)
              .port(configuredPort)
              .registry(registry)
              .executorService(http);
      if (access.enabled()) {
        b.authenticator(new HttpAuthenticator(access));
      }
      server = b.buildAndStart();
    } catch (IOException e) {
      http.shutdownNow();
      throw new IOException(
          "cannot serve metrics of "
              + nodeId
              + " on "
              + bindHost
              + ":"
              + configuredPort
              + " (pdserve.metrics.port): "
              + e.getMessage(),
          e);
    }
    port = server.getPort();
    LOG.info("metrics of {} at {}", nodeId, url());
    return this;
  }

  /** The bound port; -1 before {@link #start()}. */
  public int port() {
    return port;
  }

  /** {@code http://advertisedHost:port/metrics}; empty before {@link #start()}. */
  public String url() {
    int p = port;
    if (p < 0) {
      return "";
    }
    String host =
        advertisedHost.contains(":") && !advertisedHost.startsWith("[")
            ? "[" + advertisedHost + "]"
            : advertisedHost;
    return "http://" + host + ":" + p + "/metrics";
  }

  public PrometheusRegistry registry() {
    return registry;
  }

  public String modelName() {
    return modelName;
  }

  /** A histogram with these bucket upper bounds (+Inf is added). */
  public Histogram histogram(String name, String help, double[] bounds, String... labelNames) {
    Histogram.Builder b =
        Histogram.builder()
            .name(name)
            .help(help)
            .classicOnly()
            .classicUpperBounds(bounds)
            .labelNames(labelNames);
    b.withoutExemplars();
    if (isVllm(name)) {
      b.constLabels(modelLabels);
    }
    return b.register(registry);
  }

  /** A counter ({@code _total} is appended to the exposed name if missing). */
  public Counter counter(String name, String help, String... labelNames) {
    Counter.Builder b =
        Counter.builder().name(name).help(help).labelNames(labelNames).withoutExemplars();
    if (isVllm(name)) {
      b.constLabels(modelLabels);
    }
    return b.register(registry);
  }

  /** A gauge set by the caller. */
  public Gauge gauge(String name, String help, String... labelNames) {
    Gauge.Builder b =
        Gauge.builder().name(name).help(help).labelNames(labelNames).withoutExemplars();
    if (isVllm(name)) {
      b.constLabels(modelLabels);
    }
    return b.register(registry);
  }

  /** A gauge read from {@code value} at scrape time (nothing on any hot path). */
  public void gauge(String name, String help, DoubleSupplier value) {
    GaugeWithCallback.Builder b =
        GaugeWithCallback.builder()
            .name(name)
            .help(help)
            .callback(cb -> cb.call(value.getAsDouble()));
    if (isVllm(name)) {
      b.constLabels(modelLabels);
    }
    b.register(registry);
  }

  /** A counter read from a running total at scrape time. */
  public void counter(String name, String help, DoubleSupplier total) {
    CounterWithCallback.Builder b =
        CounterWithCallback.builder()
            .name(name)
            .help(help)
            .callback(cb -> cb.call(total.getAsDouble()));
    if (isVllm(name)) {
      b.constLabels(modelLabels);
    }
    b.register(registry);
  }

  /** Any other collector (e.g. one exporting counts kept elsewhere). */
  public void register(Collector collector) {
    registry.register(collector);
  }

  private static boolean isVllm(String name) {
    return name.startsWith(MetricNames.VLLM_PREFIX);
  }

  /** Stops the endpoint. Idempotent. */
  @Override
  public synchronized void close() {
    if (server != null) {
      server.close();
      server = null;
    }
    http.shutdownNow();
    try {
      http.awaitTermination(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
