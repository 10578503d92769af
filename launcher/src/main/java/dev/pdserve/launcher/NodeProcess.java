package dev.pdserve.launcher;

import java.io.PrintWriter;
import java.util.concurrent.CountDownLatch;
import org.apache.logging.log4j.LogManager;

/** Runs a started node until the process is told to stop (SIGTERM / Ctrl-C), then closes it. */
final class NodeProcess {
  /** The line a node prints on stdout once it serves; {@code pdserve local} waits for it. */
  static final String READY = "PDSERVE-READY";

  private NodeProcess() {}

  static int serve(
      AutoCloseable node, String role, String id, String grpcAddress, PrintWriter out) {
    return serve(node, role, id, grpcAddress, "", out);
  }

  /**
   * @param more more {@code key=value} fields for the ready line (after {@code grpc=}), or ""
   */
  static int serve(
      AutoCloseable node,
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
                  try {
                    node.close();
                  } catch (Exception e) {
                    System.err.println("error while stopping " + id + ": " + e);
                  } finally {
                    stopped.countDown();
                    LogManager.shutdown();
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
      stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }
}
