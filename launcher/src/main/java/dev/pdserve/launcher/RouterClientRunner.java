package dev.pdserve.launcher;

import dev.pdserve.model.engine.GenerateRequest;
import java.io.PrintWriter;

/** Sends a generate request to a router (arrives with the cluster). */
final class RouterClientRunner {
  private RouterClientRunner() {}

  static int run(String router, GenerateRequest req, boolean json, double timeoutSeconds, PrintWriter out, PrintWriter err) {
    throw new UserFacingException("UNIMPLEMENTED: --router needs the cluster, which this build does not have yet", 1);
  }
}
