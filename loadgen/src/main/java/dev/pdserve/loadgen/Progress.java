package dev.pdserve.loadgen;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The live progress of a run: on a terminal one line rewritten in place every half second (done /
 * total, rate, failures, in flight); otherwise a plain line every {@code plainEverySeconds}.
 */
public final class Progress implements AutoCloseable {
  private final PrintWriter out;
  private final boolean terminal;
  private final long total; // Long.MAX_VALUE = unknown
  private final long startNanos = System.nanoTime();
  private final AtomicLong sent = new AtomicLong();
  private final AtomicLong done = new AtomicLong();
  private final AtomicLong failed = new AtomicLong();
  private final ScheduledExecutorService timer;

  public Progress(PrintWriter out, boolean terminal, long total, double plainEverySeconds) {
    this.out = out;
    this.terminal = terminal;
    this.total = total;
    this.timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "bench-progress");
              t.setDaemon(true);
              return t;
            });
    long period = terminal ? 500 : Math.max(100, (long) (plainEverySeconds * 1000));
    timer.scheduleAtFixedRate(this::print, period, period, TimeUnit.MILLISECONDS);
  }

  public void sent() {
    sent.incrementAndGet();
  }

  public void finished(RequestResult r) {
    done.incrementAndGet();
    if (!r.ok()) {
      failed.incrementAndGet();
    }
  }

  /** The current line, e.g. {@code 120/200 done 24.1 req/s 0 failed 8 in flight 5.0 s}. */
  public String line() {
    double s = (System.nanoTime() - startNanos) / 1e9;
    long d = done.get();
    String of = total == Long.MAX_VALUE ? "" : "/" + total;
    return String.format(
        Locale.ROOT,
        "bench: %d%s done  %.1f req/s  %d failed  %d in flight  %.1f s",
        d,
        of,
        s > 0 ? d / s : 0,
        failed.get(),
        sent.get() - d,
        s);
  }

  private synchronized void print() {
    if (terminal) {
      out.print("\r" + line() + "   ");
    } else {
      out.println(line());
    }
    out.flush();
  }

  @Override
  public synchronized void close() {
    timer.shutdownNow();
    if (terminal) {
      out.print("\r" + line() + "   \n");
    } else {
      out.println(line());
    }
    out.flush();
  }
}
