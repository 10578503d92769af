package dev.pdserve.launcher;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.logging.log4j.LogManager;
import sun.misc.Signal;

/**
 * Runs a started node until the process is told to stop (SIGTERM / Ctrl-C), then stops it: the
 * node's stop action drains it within its shutdown timeout ({@code --shutdown-timeout}) and closes
 * it. The process then exits with 0 (1 if stopping failed); a watchdog halts it with 1 if stopping
 * takes more than the timeout plus {@link #STOP_SLACK}.
 */
public final class NodeProcess {
  /** The line a node prints on stdout once it serves; {@code pdserve local} waits for it. */
  static final String READY = "PDSERVE-READY";

  /**
   * Beyond the shutdown timeout, the time closing may take before the process is halted: a pod's
   * terminationGracePeriodSeconds must cover preStop + shutdown timeout + this.
   */
  public static final Duration STOP_SLACK = Duration.ofSeconds(10);

  private NodeProcess() {}

  static int serve(
      AutoCloseable node,
      Duration shutdownTimeout,
      String role,
      String id,
      String grpcAddress,
      PrintWriter out) {
    return serve(node, shutdownTimeout, role, id, grpcAddress, "", out);
  }

  /**
   * @param node its {@code close()} is the stop action (drain, then close)
   * @param more more {@code key=value} fields for the ready line (after {@code grpc=}), or ""
   */
  static int serve(
      AutoCloseable node,
      Duration shutdownTimeout,
      String role,
      String id,
      String grpcAddress,
      String more,
      PrintWriter out) {
    Stopper stopper = new Stopper(node, shutdownTimeout, id);
    // SIGTERM / SIGINT drain the node *before* the JVM starts its shutdown: shutdown hooks run all
    // at once, and ONNX Runtime's own hook releases its native environment, so a drain that still
    // computes (sequences finishing here) inside a hook would run on freed memory. The handler
    // drains, then exits, and only then do the hooks run.
    for (String name : new String[] {"TERM", "INT"}) {
      try {
        Signal.handle(
            new Signal(name),
            sig -> {
              int code = stopper.stop();
              System.exit(code);
            });
      } catch (IllegalArgumentException e) {
        // the platform has no such signal (or it is reserved): the shutdown hook still drains
      }
    }
    // Any other way out (System.exit elsewhere, a signal not handled above) still drains, from a
    // hook; it does nothing if a signal handler already did.
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  if (stopper.stopOnce()) {
                    // A JVM ended by a signal exits with 143; a clean drain is a clean exit.
                    Runtime.getRuntime().halt(stopper.code());
                  }
                },
                "shutdown-" + id));
    out.println(
        READY
            + " role="
            + role
            + " id="
            + id
            + " grpc="
            + grpcAddress
            + (more.isEmpty() ? "" : " " + more));
    out.flush();
    try {
      stopper.stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return stopper.code();
  }

  /** Runs a node's stop action once, under a watchdog. */
  private static final class Stopper {
    private final AutoCloseable node;
    private final Duration shutdownTimeout;
    private final String id;
    private final AtomicBoolean started = new AtomicBoolean();
    final CountDownLatch stopped = new CountDownLatch(1);
    private volatile int code;

    Stopper(AutoCloseable node, Duration shutdownTimeout, String id) {
      this.node = node;
      this.shutdownTimeout = shutdownTimeout;
      this.id = id;
    }

    int code() {
      return code;
    }

    /** Stops the node (or waits for the stop already under way); returns the exit code. */
    int stop() {
      if (!stopOnce()) {
        try {
          stopped.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      return code;
    }

    /** Stops the node if nobody has started to; true if this call did. */
    boolean stopOnce() {
      if (!started.compareAndSet(false, true)) {
        return false;
      }
      Thread watchdog =
          new Thread(
              () -> {
                try {
                  Thread.sleep(shutdownTimeout.plus(STOP_SLACK).toMillis());
                } catch (InterruptedException e) {
                  return;
                }
                System.err.println(
                    id
                        + " did not stop within its shutdown timeout ("
                        + shutdownTimeout.toMillis()
                        + " ms) + "
                        + STOP_SLACK.toSeconds()
                        + " s; halting");
                Runtime.getRuntime().halt(1);
              },
              "shutdown-watchdog-" + id);
      watchdog.setDaemon(true);
      watchdog.start();
      try {
        node.close();
      } catch (Exception e) {
        System.err.println("error while stopping " + id + ": " + e);
        code = 1;
      } finally {
        watchdog.interrupt();
        LogManager.shutdown();
        System.out.flush();
        System.err.flush();
        stopped.countDown();
      }
      return true;
    }
  }
}
