package dev.pdserve.loadgen;

import dev.pdserve.loadgen.cluster.ClusterProbe;
import dev.pdserve.loadgen.cluster.ClusterReport;
import dev.pdserve.loadgen.cluster.ClusterSnapshot;
import dev.pdserve.loadgen.dataset.BenchRequest;
import dev.pdserve.loadgen.dataset.Dataset;
import dev.pdserve.loadgen.dataset.Datasets;
import dev.pdserve.loadgen.dataset.PromptForm;
import dev.pdserve.loadgen.dataset.RandomMultimodalDataset;
import dev.pdserve.loadgen.dataset.TokenSpace;
import dev.pdserve.loadgen.target.GrpcTarget;
import dev.pdserve.loadgen.target.ModelInfo;
import dev.pdserve.loadgen.target.OpenAiHttpTarget;
import dev.pdserve.loadgen.target.RequestOptions;
import dev.pdserve.loadgen.target.RequestTimer;
import dev.pdserve.loadgen.target.Target;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

/**
 * Runs one benchmark: resolves the model, builds the request stream, sends the warm-up, snapshots
 * the cluster, then lets {@code workers} independent workers send their slices of the stream
 * (request {@code i} goes to worker {@code i mod workers}, each worker with its own connection and
 * its own copy of the arrival schedule) at their arrival times, bounded by {@code max-concurrency},
 * waits for every answer and snapshots the cluster again.
 */
public final class Benchmark {
  /** Everything a run produced. */
  public record Outcome(
      BenchSummary summary,
      List<RequestResult> results,
      ClusterReport cluster,
      ModelInfo model,
      String dataset,
      int warmupFailed) {}

  /**
   * Default number of requests when neither --num-prompts nor --duration says otherwise (vLLM's
   * default).
   */
  public static final int DEFAULT_NUM_PROMPTS = 1000;

  private final BenchConfig cfg;
  private final ApiKey apiKey;
  private final ClientTls tls;
  private final PrintWriter log;
  private final boolean terminal;

  /**
   * @param log where progress and notes go (stderr in the CLI)
   * @param terminal whether {@code log} is a terminal (progress rewrites one line)
   */
  public Benchmark(BenchConfig cfg, PrintWriter log, boolean terminal) {
    this(cfg, log, terminal, ApiKey.NONE);
  }

  /** As above, every request (and the cluster report's calls) presenting {@code apiKey}. */
  public Benchmark(BenchConfig cfg, PrintWriter log, boolean terminal, ApiKey apiKey) {
    this(cfg, log, terminal, apiKey, ClientTls.PLAINTEXT);
  }

  /** As above, every connection (targets and the cluster report's) secured by {@code tls}. */
  public Benchmark(
      BenchConfig cfg, PrintWriter log, boolean terminal, ApiKey apiKey, ClientTls tls) {
    cfg.validate();
    this.apiKey = apiKey;
    this.tls = tls;
    this.cfg = cfg;
    this.log = log;
    this.terminal = terminal;
  }

  private Target newTarget(int worker) {
    return cfg.router() != null
        ? new GrpcTarget(cfg.router(), apiKey, tls)
        : new OpenAiHttpTarget(cfg.baseUrl(), cfg.endpoint(), worker, apiKey, tls);
  }

  public Outcome run() throws InterruptedException {
    List<Target> targets = new ArrayList<>();
    try {
      for (int w = 0; w < cfg.workers(); w++) {
        targets.add(newTarget(w));
      }
      ModelInfo info = targets.get(0).model(cfg.model());
      int context = cfg.maxModelLen() > 0 ? cfg.maxModelLen() : info.maxContext();
      PromptForm form = cfg.router() != null ? PromptForm.TOKEN_IDS : PromptForm.TEXT;
      TokenSpace tokens = TokenSpace.forVocab(info.vocabSize() > 0 ? info.vocabSize() : 32000);
      Dataset ds = Datasets.open(cfg.dataset(), tokens, form, cfg.seed(), context);
      RequestOptions opts =
          new RequestOptions(
              info.id(), cfg.temperature(), cfg.ignoreEos(), cfg.requestTimeoutSeconds());
      String runId = "bench-" + UUID.randomUUID().toString().substring(0, 8);

      int warmupFailed = warmup(targets.get(0), ds, opts, runId);

      ClusterProbe probe =
          cfg.admin() != null || cfg.router() != null
              ? new ClusterProbe(cfg.admin() != null ? cfg.admin() : cfg.router(), apiKey, tls)
              : null;
      try {
        ClusterSnapshot before = snapshot(probe);
        long total = total(ds);
        Queue<RequestResult> results = new ConcurrentLinkedQueue<>();
        long startMs = System.currentTimeMillis();
        long start = System.nanoTime();
        InFlight inFlight = new InFlight();
        try (Progress progress = new Progress(log, terminal, total, 5)) {
          Semaphore slots = cfg.maxConcurrency() > 0 ? new Semaphore(cfg.maxConcurrency()) : null;
          Consumer<RequestResult> done =
              r -> {
                results.add(r);
                progress.finished(r);
                if (slots != null) {
                  slots.release();
                }
                inFlight.finished();
              };
          AtomicInteger threadNo = new AtomicInteger();
          ExecutorService pool =
              Executors.newFixedThreadPool(
                  cfg.workers(),
                  r -> {
                    Thread t = new Thread(r, "bench-worker-" + threadNo.getAndIncrement());
                    t.setDaemon(true);
                    return t;
                  });
          try {
            List<Future<?>> workers = new ArrayList<>();
            for (int w = 0; w < cfg.workers(); w++) {
              int worker = w;
              Target target = targets.get(w);
              workers.add(
                  pool.submit(
                      () -> {
                        work(
                            worker, target, ds, opts, runId, total, start, slots, inFlight,
                            progress, done);
                        return null;
                      }));
            }
            for (Future<?> f : workers) {
              try {
                f.get();
              } catch (ExecutionException e) {
                throw new IllegalStateException(
                    "a bench worker failed: " + e.getCause(), e.getCause());
              }
            }
            inFlight.awaitNone();
          } finally {
            pool.shutdownNow();
          }
        }
        double duration = (System.nanoTime() - start) / 1e9;
        ClusterSnapshot after = snapshot(probe);
        List<RequestResult> sorted = new ArrayList<>(results);
        sorted.sort(Comparator.comparingLong(RequestResult::index));
        BenchSummary summary = BenchSummary.of(sorted, startMs, duration, cfg.goodputSlosMs());
        summary.meta.putAll(meta(targets.get(0), info, ds, context));
        return new Outcome(
            summary, sorted, new ClusterReport(before, after), info, ds.describe(), warmupFailed);
      } finally {
        if (probe != null) {
          probe.close();
        }
      }
    } finally {
      targets.forEach(Target::close);
    }
  }

  private long total(Dataset ds) {
    long n;
    if (cfg.numPrompts() > 0) {
      n = cfg.numPrompts();
    } else if (cfg.durationSeconds() > 0) {
      n = Long.MAX_VALUE;
    } else {
      n = ds.size().isPresent() ? ds.size().getAsLong() : DEFAULT_NUM_PROMPTS;
    }
    if (ds.size().isPresent() && ds.arrivalSeconds(0).isPresent() && n > ds.size().getAsLong()) {
      log.println("note: the trace has " + ds.size().getAsLong() + " requests; sending those");
      n = ds.size().getAsLong();
    }
    return n;
  }

  private void work(
      int worker,
      Target target,
      Dataset ds,
      RequestOptions opts,
      String runId,
      long total,
      long start,
      Semaphore slots,
      InFlight inFlight,
      Progress progress,
      Consumer<RequestResult> done)
      throws InterruptedException {
    boolean trace = ds.arrivalSeconds(0).isPresent();
    ArrivalSchedule schedule =
        trace
            ? null
            : new ArrivalSchedule(
                cfg.requestRate(), cfg.burstiness(), cfg.rampUpSeconds(), cfg.seed());
    long limitNanos =
        cfg.durationSeconds() > 0 ? (long) (cfg.durationSeconds() * 1e9) : Long.MAX_VALUE;
    for (long i = 0; i < total; i++) {
      double at = trace ? ds.arrivalSeconds(i).getAsDouble() : schedule.next();
      long atNanos = (long) (at * 1e9);
      if (atNanos > limitNanos) {
        return;
      }
      if (i % cfg.workers() != worker) {
        continue;
      }
      long wait;
      while ((wait = start + atNanos - System.nanoTime()) > 0) {
        LockSupport.parkNanos(wait);
        if (Thread.interrupted()) {
          throw new InterruptedException();
        }
      }
      if (slots != null) {
        slots.acquire();
      }
      if (System.nanoTime() - start > limitNanos) {
        if (slots != null) {
          slots.release();
        }
        return;
      }
      BenchRequest req = ds.get(i);
      inFlight.started();
      progress.sent();
      RequestTimer timer = new RequestTimer(req, worker, runId + "-" + i, start, done);
      try {
        target.send(timer, opts);
      } catch (RuntimeException e) {
        timer.fail("CLIENT_ERROR", e.toString());
      }
    }
  }

  /**
   * Sends the warm-up requests (indices -1, -2, ...) and waits for them; returns how many failed.
   */
  private int warmup(Target target, Dataset ds, RequestOptions opts, String runId)
      throws InterruptedException {
    if (cfg.warmupRequests() == 0) {
      return 0;
    }
    Semaphore slots =
        new Semaphore(cfg.maxConcurrency() > 0 ? cfg.maxConcurrency() : Integer.MAX_VALUE);
    InFlight inFlight = new InFlight();
    AtomicInteger failed = new AtomicInteger();
    long start = System.nanoTime();
    for (int k = 0; k < cfg.warmupRequests(); k++) {
      slots.acquire();
      inFlight.started();
      RequestTimer t =
          new RequestTimer(
              ds.get(-1L - k),
              0,
              runId + "-warmup-" + k,
              start,
              r -> {
                if (!r.ok()) {
                  failed.incrementAndGet();
                }
                slots.release();
                inFlight.finished();
              });
      try {
        target.send(t, opts);
      } catch (RuntimeException e) {
        t.fail("CLIENT_ERROR", e.toString());
      }
    }
    inFlight.awaitNone();
    log.printf(
        "warm-up: %d requests, %d failed, %.1f s%n",
        cfg.warmupRequests(), failed.get(), (System.nanoTime() - start) / 1e9);
    log.flush();
    return failed.get();
  }

  private ClusterSnapshot snapshot(ClusterProbe probe) {
    if (probe == null) {
      return new ClusterSnapshot(
          List.of(),
          Map.of(),
          "no router admin address (pass --admin HOST:PORT of the router to see the cluster)",
          Map.of());
    }
    return probe.snapshot();
  }

  private Map<String, Object> meta(Target target, ModelInfo info, Dataset ds, int context) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("date", Instant.now().toString());
    m.put(
        "backend",
        cfg.router() != null ? "grpc" : cfg.endpoint().equals("chat") ? "openai-chat" : "openai");
    m.put("target", target.describe());
    m.put("model", info.id());
    m.put("max_model_len", context);
    m.put("dataset", ds.describe());
    if (ds instanceof RandomMultimodalDataset mm) {
      m.put("images_per_request", mm.images().perRequest());
      m.put("image_size", mm.images().size());
    }
    m.put("seed", cfg.seed());
    m.put(
        "request_rate",
        ds.arrivalSeconds(0).isPresent()
            ? "trace timestamps"
            : Double.isInfinite(cfg.requestRate()) ? "inf" : cfg.requestRate());
    m.put("burstiness", cfg.burstiness());
    m.put("ramp_up_seconds", cfg.rampUpSeconds());
    m.put("max_concurrency", cfg.maxConcurrency() > 0 ? cfg.maxConcurrency() : null);
    m.put("workers", cfg.workers());
    m.put("warmup_requests", cfg.warmupRequests());
    m.put("temperature", cfg.temperature());
    m.put("ignore_eos", cfg.ignoreEos());
    return m;
  }

  /** Counts requests in flight; {@link #awaitNone} returns when every one has finished. */
  private static final class InFlight {
    private long n;

    synchronized void started() {
      n++;
    }

    synchronized void finished() {
      if (--n == 0) {
        notifyAll();
      }
    }

    synchronized void awaitNone() throws InterruptedException {
      while (n > 0) {
        wait();
      }
    }
  }
}
