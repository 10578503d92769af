package dev.pdserve.launcher;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import org.apache.logging.log4j.LogManager;

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
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
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
                  int code = 0;
                  try {
                    node.close();
                  } catch (Exception e) {
                    System.err.println("error while stopping " + id + ": " + e);
                    code = 1;
                  } finally {
                    stopped.countDown();
                    LogManager.shutdown();
                    System.out.flush();
                    System.err.flush();
                  }
                  // A JVM ended by SIGTERM exits with 143; a clean drain is a clean exit.
                  Runtime.getRuntime().halt(code);
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
      stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }
}
