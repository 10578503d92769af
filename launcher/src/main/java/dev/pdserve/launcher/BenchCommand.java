package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.loadgen.BenchConfig;
import dev.pdserve.loadgen.BenchSummary;
import dev.pdserve.loadgen.Benchmark;
import dev.pdserve.loadgen.ClientTls;
import dev.pdserve.loadgen.dataset.DatasetConfig;
import dev.pdserve.loadgen.dataset.ImageOptions;
import dev.pdserve.loadgen.report.CsvReport;
import dev.pdserve.loadgen.report.HtmlReport;
import dev.pdserve.loadgen.report.JsonReport;
import dev.pdserve.loadgen.report.SummaryRows;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code pdserve bench}: load-tests a router (gRPC) or any OpenAI-compatible HTTP server. Option
 * names follow {@code vllm bench serve} (and guidellm / AIPerf where vLLM has none). Translates
 * options into a {@link BenchConfig} and writes the reports; the work is in the loadgen module.
 */
@Command(
    name = "bench",
    mixinStandardHelpOptions = true,
    subcommands = BenchCommand.Merge.class,
    sortOptions = false,
    description = {
      "Load-test a pdserve router (gRPC) or an OpenAI-compatible HTTP endpoint and report TTFT, TPOT, ITL, E2E latency, throughput and goodput.",
      "Example: pdserve bench --router 127.0.0.1:50051 --num-prompts 200 --request-rate 20 --input-len 64 --output-len 16 --json out.json --html out.html"
    })
final class BenchCommand implements Callable<Integer> {
  @picocli.CommandLine.Mixin ApiKeyOption apiKey;

  @picocli.CommandLine.Mixin TlsClientOptions tls = new TlsClientOptions();

  @Spec CommandLine.Model.CommandSpec spec;

  @Option(
      names = "--router",
      paramLabel = "HOST:PORT",
      description = "Router to load over gRPC (pdserve.v1.Generation/Generate).")
  String router;

  @Option(
      names = "--base-url",
      paramLabel = "URL",
      description = "An OpenAI-compatible HTTP server instead, e.g. http://127.0.0.1:8000.")
  String baseUrl;

  @Option(
      names = "--endpoint",
      defaultValue = "completions",
      description =
          "HTTP: completions (/v1/completions) or chat (/v1/chat/completions). Default: ${DEFAULT-VALUE}.")
  String endpoint;

  @Option(
      names = "--admin",
      paramLabel = "HOST:PORT",
      description = "Router admin API for the cluster report (default: --router).")
  String admin;

  @Option(names = "--model", description = "Model name (default: the first the server lists).")
  String model;

  @Option(
      names = "--dataset-name",
      defaultValue = "random",
      description = "random, random-mm, sharegpt, prefix or trace. Default: ${DEFAULT-VALUE}.")
  String datasetName;

  @Option(
      names = {"--input-len", "--random-input-len"},
      defaultValue = "256",
      description = "random, random-mm: prompt (text) tokens. Default: ${DEFAULT-VALUE}.")
  int inputLen;

  @Option(
      names = {"--output-len", "--random-output-len"},
      defaultValue = "64",
      description = "random, prefix: output tokens (max_tokens). Default: ${DEFAULT-VALUE}.")
  int outputLen;

  @Option(
      names = {"--range-ratio", "--random-range-ratio"},
      defaultValue = "0",
      description = "random: lengths uniform in [len*(1-r), len*(1+r)]. Default: ${DEFAULT-VALUE}.")
  double rangeRatio;

  @Option(
      names = "--images-per-request",
      defaultValue = "1",
      description = "random-mm: generated images in each request. Default: ${DEFAULT-VALUE}.")
  int imagesPerRequest;

  @Option(
      names = "--image-size",
      defaultValue = "448x448",
      paramLabel = "WxH",
      description = "random-mm: pixels of each generated PNG image. Default: ${DEFAULT-VALUE}.")
  String imageSize;

  @Option(
      names = "--dataset-path",
      paramLabel = "FILE",
      description =
          "sharegpt: the JSON file; trace: a Mooncake JSONL (default ../shared/data/traces/mooncake-conversation.jsonl).")
  Path datasetPath;

  @Option(
      names = "--sharegpt-output-len",
      defaultValue = "0",
      description = "sharegpt: fixed output tokens (0 = from the reply's length).")
  int sharegptOutputLen;

  @Option(
      names = "--num-prefixes",
      defaultValue = "4",
      description = "prefix: distinct shared prefixes. Default: ${DEFAULT-VALUE}.")
  int numPrefixes;

  @Option(
      names = "--suffixes-per-prefix",
      defaultValue = "16",
      description = "prefix: requests per prefix. Default: ${DEFAULT-VALUE}.")
  int suffixesPerPrefix;

  @Option(
      names = "--prefix-len",
      defaultValue = "256",
      description = "prefix: tokens per shared prefix. Default: ${DEFAULT-VALUE}.")
  int prefixLen;

  @Option(
      names = "--suffix-len",
      defaultValue = "32",
      description = "prefix: tokens per unique suffix. Default: ${DEFAULT-VALUE}.")
  int suffixLen;

  @Option(
      names = "--trace-time-scale",
      defaultValue = "1",
      description = "trace: multiplies timestamps (0.1 = 10x faster). Default: ${DEFAULT-VALUE}.")
  double traceTimeScale;

  @Option(
      names = "--trace-length-scale",
      defaultValue = "1",
      description = "trace: multiplies input/output/block lengths. Default: ${DEFAULT-VALUE}.")
  double traceLengthScale;

  @Option(
      names = "--trace-limit",
      defaultValue = "0",
      description = "trace: only the first N entries (0 = all).")
  int traceLimit;

  @Option(
      names = "--max-model-len",
      defaultValue = "0",
      description = "Context to fit prompts into (0 = as the server reports).")
  int maxModelLen;

  @Option(
      names = "--request-rate",
      defaultValue = "inf",
      description = "Requests per second, or inf (all at once). Default: ${DEFAULT-VALUE}.")
  String requestRate;

  @Option(
      names = "--burstiness",
      defaultValue = "1",
      description = "Gamma shape of inter-arrival times; 1 = Poisson. Default: ${DEFAULT-VALUE}.")
  double burstiness;

  @Option(
      names = "--max-concurrency",
      defaultValue = "0",
      description = "At most N requests in flight (0 = unbounded).")
  int maxConcurrency;

  @Option(
      names = "--ramp-up-seconds",
      defaultValue = "0",
      description = "Rate grows linearly from 0 to --request-rate over this time.")
  double rampUpSeconds;

  @Option(
      names = "--num-prompts",
      defaultValue = "0",
      description =
          "Requests to send (default 1000, or all of a trace, or unbounded with --duration).")
  int numPrompts;

  @Option(
      names = "--duration",
      defaultValue = "0",
      paramLabel = "SECONDS",
      description = "Stop sending new requests after this long.")
  double duration;

  @Option(
      names = "--warmup-requests",
      defaultValue = "0",
      description = "Requests sent first and left out of every figure.")
  int warmupRequests;

  @Option(
      names = "--seed",
      defaultValue = "0",
      description =
          "Same seed, same request stream (lengths, token ids, arrival times). Default: ${DEFAULT-VALUE}.")
  long seed;

  @Option(
      names = "--workers",
      defaultValue = "1",
      description =
          "Independent client workers, each with its own connection and slice of the stream.")
  int workers;

  @Option(
      names = {"--percentiles", "--metric-percentiles"},
      defaultValue = "50,90,99",
      description = "Percentiles to report (50, 90, 99 always). Default: ${DEFAULT-VALUE}.")
  String percentiles;

  @Option(
      names = "--goodput",
      arity = "1..*",
      paramLabel = "KEY:MS",
      description = "SLOs for goodput: ttft:MS tpot:MS e2el:MS.")
  List<String> goodput = new ArrayList<>();

  @Option(
      names = "--temperature",
      defaultValue = "0",
      description = "Sampling temperature (0 = greedy). Default: ${DEFAULT-VALUE}.")
  double temperature;

  @Option(
      names = "--ignore-eos",
      description = "Generate exactly max_tokens (ignore end-of-sequence).")
  boolean ignoreEos;

  @Option(
      names = "--request-timeout",
      defaultValue = "600",
      paramLabel = "SECONDS",
      description = "Deadline per request. Default: ${DEFAULT-VALUE}.")
  double requestTimeout;

  @Option(
      names = "--json",
      paramLabel = "FILE",
      description = "Write the summary (every figure, encoded histograms, cluster report) as JSON.")
  Path json;

  @Option(names = "--detailed", description = "With --json: add a row per request.")
  boolean detailed;

  @Option(names = "--csv", paramLabel = "FILE", description = "Write a row per request as CSV.")
  Path csv;

  @Option(
      names = "--html",
      paramLabel = "FILE",
      description = "Write a self-contained HTML report (summary, latency CDFs, request timeline).")
  Path html;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    int[] size = ImageOptions.parseSize(imageSize);
    DatasetConfig ds =
        new DatasetConfig(
            datasetName,
            inputLen,
            outputLen,
            rangeRatio,
            datasetPath,
            sharegptOutputLen,
            numPrefixes,
            suffixesPerPrefix,
            prefixLen,
            suffixLen,
            traceTimeScale,
            traceLengthScale,
            traceLimit,
            new ImageOptions(imagesPerRequest, size[0], size[1]));
    List<Double> ps = BenchConfig.parsePercentiles(percentiles);
    Map<String, Double> slos = BenchConfig.parseGoodput(goodput);
    BenchConfig cfg =
        new BenchConfig(
            router,
            baseUrl,
            endpoint,
            admin,
            model,
            ds,
            parseRate(requestRate),
            burstiness,
            maxConcurrency,
            rampUpSeconds,
            numPrompts,
            duration,
            warmupRequests,
            seed,
            workers,
            ps,
            slos,
            temperature,
            ignoreEos,
            requestTimeout,
            maxModelLen);
    if (baseUrl != null && baseUrl.startsWith("http://") && admin == null && tls.given()) {
      throw new UserFacingException(
          "error: --tls-ca/--tls/--tls-cert need an https:// --base-url (or an --admin address),"
              + " got "
              + baseUrl,
          CliErrors.USAGE);
    }
    ClientTls clientTls = tls.clientTls();
    Benchmark.Outcome o;
    try {
      Benchmark bench =
          new Benchmark(cfg, err, System.console() != null, apiKey.apiKey(), clientTls);
      err.println(
          "pdserve bench: "
              + (router != null ? "grpc " + router : baseUrl)
              + ", dataset "
              + datasetName
              + ", request rate "
              + requestRate
              + (maxConcurrency > 0 ? ", max concurrency " + maxConcurrency : "")
              + ", seed "
              + seed);
      err.flush();
      o = bench.run();
    } catch (IllegalStateException | UncheckedIOException e) {
      throw new UserFacingException("error: " + e.getMessage(), CliErrors.FAILED);
    }
    List<SummaryRows.Section> table = SummaryRows.of(o.summary(), ps, o.cluster());
    SummaryRows.print(table, out);
    if (json != null) {
      JsonReport.write(json, JsonReport.of(o, ps, detailed));
      err.println("wrote " + json);
    }
    if (csv != null) {
      CsvReport.write(csv, o.results());
      err.println("wrote " + csv);
    }
    if (html != null) {
      HtmlReport.write(html, o.summary(), table, o.results());
      err.println("wrote " + html);
    }
    err.flush();
    if (o.summary().completed == 0 && o.summary().failed > 0) {
      throw new UserFacingException(
          "error: every request failed: " + o.summary().failures, CliErrors.FAILED);
    }
    return 0;
  }

  static double parseRate(String s) {
    String v = s.trim().toLowerCase(Locale.ROOT);
    if (v.equals("inf") || v.equals("infinity")) {
      return Double.POSITIVE_INFINITY;
    }
    try {
      return Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(
          "--request-rate takes a number of requests per second or inf, got '" + s + "'");
    }
  }

  /** {@code pdserve bench merge}: combines the JSON summaries of several bench processes. */
  @Command(
      name = "merge",
      mixinStandardHelpOptions = true,
      description =
          "Merge JSON summaries of several bench runs (e.g. one per client machine) by adding their histograms; percentiles are of the union, never averaged.")
  static final class Merge implements Callable<Integer> {
    @Spec CommandLine.Model.CommandSpec spec;

    @Parameters(
        arity = "1..*",
        paramLabel = "FILE",
        description = "JSON files written by pdserve bench --json.")
    List<Path> files;

    @Option(names = "--json", paramLabel = "FILE", description = "Write the merged summary.")
    Path json;

    @Option(
        names = {"--percentiles", "--metric-percentiles"},
        defaultValue = "50,90,99",
        description = "Percentiles to report. Default: ${DEFAULT-VALUE}.")
    String percentiles;

    @Override
    public Integer call() throws IOException {
      List<BenchSummary> parts = new ArrayList<>();
      for (Path f : files) {
        JsonNode n;
        try {
          n = JsonReport.JSON.readTree(f.toFile());
        } catch (IOException e) {
          throw new IllegalArgumentException("cannot read " + f + ": " + e.getMessage());
        }
        parts.add(BenchSummary.fromJson(n, f.toString()));
      }
      List<Double> ps = BenchConfig.parsePercentiles(percentiles);
      BenchSummary merged = BenchSummary.merge(parts);
      SummaryRows.print(SummaryRows.of(merged, ps, null), spec.commandLine().getOut());
      if (json != null) {
        ObjectNode o = merged.toJson(JsonReport.JSON, ps);
        ArrayNode from = o.putArray("merged_from");
        files.forEach(f -> from.add(f.toString()));
        JsonReport.write(json, o);
        spec.commandLine().getErr().println("wrote " + json);
      }
      return 0;
    }
  }
}
