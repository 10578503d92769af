package dev.pdserve.loadgen;

import dev.pdserve.loadgen.dataset.DatasetConfig;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * One benchmark run, as the options name it (vLLM's {@code bench serve} names where they exist).
 *
 * @param router gRPC target {@code HOST:PORT}, or null when {@code baseUrl} is set
 * @param baseUrl OpenAI-compatible HTTP target, or null
 * @param endpoint HTTP: {@code completions} or {@code chat}
 * @param admin where to ask {@code ListNodes} (default: the router), or null for none
 * @param model the model name, or null to ask the server
 * @param requestRate requests per second ({@code Infinity} = all at once)
 * @param burstiness gamma shape of the inter-arrival times (1 = Poisson)
 * @param maxConcurrency at most this many requests in flight (0 = unbounded)
 * @param rampUpSeconds the rate grows linearly from 0 over this many seconds
 * @param numPrompts requests to send (0 = decided by duration or the dataset)
 * @param durationSeconds stop sending after this many seconds (0 = no limit)
 * @param warmupRequests sent before the measured run and excluded from every figure
 * @param seed same seed → same request stream (lengths, token ids, arrival times)
 * @param workers independent client workers, each with its own connection and slice of the stream
 * @param percentiles extra percentiles to report (50, 90, 99 are always reported)
 * @param goodputSlosMs SLOs by metric ({@code ttft}, {@code tpot}, {@code e2el}) in milliseconds
 * @param maxModelLen context to fit prompts into (0 = as the server reports)
 */
public record BenchConfig(
    String router,
    String baseUrl,
    String endpoint,
    String admin,
    String model,
    DatasetConfig dataset,
    double requestRate,
    double burstiness,
    int maxConcurrency,
    double rampUpSeconds,
    int numPrompts,
    double durationSeconds,
    int warmupRequests,
    long seed,
    int workers,
    List<Double> percentiles,
    Map<String, Double> goodputSlosMs,
    double temperature,
    boolean ignoreEos,
    double requestTimeoutSeconds,
    int maxModelLen) {

  /** Checks every option; messages name the option and say what is allowed. */
  public void validate() {
    if ((router == null) == (baseUrl == null)) {
      throw new IllegalArgumentException(
          "give exactly one target: --router HOST:PORT (gRPC) or --base-url URL (OpenAI-compatible HTTP)");
    }
    if (!(requestRate > 0)) {
      throw new IllegalArgumentException("--request-rate must be > 0 or inf, got " + requestRate);
    }
    if (!(burstiness > 0) || Double.isInfinite(burstiness)) {
      throw new IllegalArgumentException(
          "--burstiness must be a finite number > 0, got " + burstiness);
    }
    if (maxConcurrency < 0) {
      throw new IllegalArgumentException(
          "--max-concurrency must be >= 1 (or unset), got " + maxConcurrency);
    }
    if (!(rampUpSeconds >= 0)) {
      throw new IllegalArgumentException("--ramp-up-seconds must be >= 0, got " + rampUpSeconds);
    }
    if (rampUpSeconds > 0 && Double.isInfinite(requestRate)) {
      throw new IllegalArgumentException(
          "--ramp-up-seconds needs a finite --request-rate to ramp up to");
    }
    if (numPrompts < 0) {
      throw new IllegalArgumentException("--num-prompts must be >= 1, got " + numPrompts);
    }
    if (!(durationSeconds >= 0)) {
      throw new IllegalArgumentException("--duration must be > 0 seconds, got " + durationSeconds);
    }
    if (durationSeconds > 0
        && numPrompts == 0
        && Double.isInfinite(requestRate)
        && maxConcurrency == 0
        && !dataset.name().equals("trace")) {
      throw new IllegalArgumentException(
          "--duration with an infinite --request-rate needs --max-concurrency (or --num-prompts): otherwise requests would be sent without limit");
    }
    if (warmupRequests < 0) {
      throw new IllegalArgumentException("--warmup-requests must be >= 0, got " + warmupRequests);
    }
    if (workers < 1 || workers > 1024) {
      throw new IllegalArgumentException("--workers must be in 1..1024, got " + workers);
    }
    for (double p : percentiles) {
      if (!(p > 0 && p <= 100)) {
        throw new IllegalArgumentException("--percentiles must be in (0, 100], got " + p);
      }
    }
    for (Map.Entry<String, Double> e : goodputSlosMs.entrySet()) {
      if (!BenchSummary.SLO_KEYS.contains(e.getKey())) {
        throw new IllegalArgumentException(
            "--goodput takes ttft:MS, tpot:MS and e2el:MS, got '" + e.getKey() + "'");
      }
      if (!(e.getValue() > 0)) {
        throw new IllegalArgumentException(
            "--goodput " + e.getKey() + " must be > 0 ms, got " + e.getValue());
      }
    }
    if (!(temperature >= 0)) {
      throw new IllegalArgumentException("--temperature must be >= 0, got " + temperature);
    }
    if (!(requestTimeoutSeconds > 0)) {
      throw new IllegalArgumentException(
          "--request-timeout must be > 0 seconds, got " + requestTimeoutSeconds);
    }
    if (maxModelLen < 0) {
      throw new IllegalArgumentException("--max-model-len must be >= 1, got " + maxModelLen);
    }
    dataset.validate();
    if (dataset.name().equals("random-mm") && baseUrl != null && !"chat".equals(endpoint)) {
      throw new IllegalArgumentException(
          "--dataset-name random-mm over HTTP needs --endpoint chat: images travel as image_url"
              + " parts of a chat message (/v1/completions takes text only)");
    }
  }

  /** Parses {@code --goodput} values: {@code ttft:500 tpot:50 e2el:2000}. */
  public static Map<String, Double> parseGoodput(List<String> items) {
    Map<String, Double> m = new LinkedHashMap<>();
    for (String item : items) {
      int c = item.indexOf(':');
      if (c <= 0) {
        throw new IllegalArgumentException(
            "--goodput takes KEY:MS pairs like ttft:500 tpot:50 e2el:2000, got '" + item + "'");
      }
      String k = item.substring(0, c).trim().toLowerCase(Locale.ROOT);
      if (!BenchSummary.SLO_KEYS.contains(k)) {
        throw new IllegalArgumentException(
            "--goodput takes ttft:MS, tpot:MS and e2el:MS, got '" + item + "'");
      }
      try {
        m.put(k, Double.parseDouble(item.substring(c + 1).trim()));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(
            "--goodput "
                + k
                + " needs a number of milliseconds, got '"
                + item.substring(c + 1)
                + "'");
      }
    }
    return m;
  }

  /** Parses {@code --percentiles 50,90,99,99.9}. */
  public static List<Double> parsePercentiles(String csv) {
    List<Double> out = new ArrayList<>();
    for (String p : csv.split(",")) {
      if (p.isBlank()) {
        continue;
      }
      try {
        out.add(Double.parseDouble(p.trim()));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(
            "--percentiles takes numbers like 50,90,99,99.9, got '" + p.trim() + "'");
      }
    }
    return out;
  }
}
