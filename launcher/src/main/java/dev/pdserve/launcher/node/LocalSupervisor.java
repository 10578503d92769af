package dev.pdserve.launcher.node;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;

/**
 * Keeps the children of a {@link LocalCluster} running: one that exits (while the cluster is not
 * closing) is started again as {@link ChildRestarts} decides, and each step is said in one line
 * ({@code child e1 exited with code 137; restarting in 1s (attempt 1 of 3)}, then {@code child e1
 * is back (pid 4242)}). {@link #run()} returns the child it gave up on once its restarts are spent.
 */
public final class LocalSupervisor {
  private final LocalCluster cluster;
  private final ChildRestarts restarts;
  private final Consumer<String> say;
  private final Duration startTimeout;

  public LocalSupervisor(
      LocalCluster cluster, ChildRestarts restarts, Consumer<String> say, Duration startTimeout) {
    this.cluster = cluster;
    this.restarts = restarts;
    this.say = say;
    this.startTimeout = startTimeout;
  }

  /** Supervises until a child's restarts are spent (returns it) or the thread is interrupted. */
  public LocalChild run() throws InterruptedException {
    while (true) {
      LocalChild dead;
      try {
        dead = cluster.anyExit().get();
      } catch (ExecutionException e) {
        throw new IllegalStateException(e.getCause());
      }
      int code = dead.process().exitValue();
      ChildRestarts.Decision d = restarts.exited(dead.id());
      say.accept(restarts.describe(dead.id(), code, d));
      if (!d.restart()) {
        return dead;
      }
      Thread.sleep(d.delay().toMillis());
      try {
        LocalChild fresh = cluster.restart(dead, startTimeout);
        say.accept("child " + dead.id() + " is back (pid " + fresh.process().pid() + ")");
      } catch (TimeoutException e) {
        // Still starting but not ready in time: end it, which counts as its next exit.
        say.accept("child " + dead.id() + " did not start again in time: " + e.getMessage());
        cluster.children().stream()
            .filter(c -> c.id().equals(dead.id()))
            .forEach(c -> c.process().destroyForcibly());
      } catch (IOException e) {
        // It exited while starting (its exit is the next one handled), or the cluster is closing.
        say.accept("child " + dead.id() + " did not start again: " + e.getMessage());
      }
    }
  }
}
