package dev.pdserve.launcher.node;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * One node process of a {@link LocalCluster}: its command, its ready line ({@code PDSERVE-READY
 * ...} on stdout) and the last lines it printed, kept for error messages.
 */
public final class LocalChild {
  private static final int TAIL_LINES = 30;

  private final String id;
  private final String role;
  private final Process process;
  private final List<String> command;
  private final CompletableFuture<String> ready = new CompletableFuture<>();
  private final Deque<String> tail = new ArrayDeque<>();

  private LocalChild(String id, String role, Process process, List<String> command) {
    this.id = id;
    this.role = role;
    this.process = process;
    this.command = List.copyOf(command);
  }

  /** Starts {@code command}; its output lines other than the ready line go to {@code log}. */
  static LocalChild start(String id, String role, List<String> command, Consumer<String> log)
      throws IOException {
    Process p = new ProcessBuilder(command).start();
    LocalChild child = new LocalChild(id, role, p, command);
    child.pump(p.getInputStream(), true, log);
    child.pump(p.getErrorStream(), false, log);
    return child;
  }

  public String id() {
    return id;
  }

  public String role() {
    return role;
  }

  public Process process() {
    return process;
  }

  List<String> command() {
    return command;
  }

  /** Completes with the ready line, or exceptionally when the process ends before it. */
  CompletableFuture<String> ready() {
    return ready;
  }

  synchronized String lastLines() {
    return String.join("\n", tail);
  }

  /** A {@code key=value} field of a node's ready line, or null. */
  public static String readyField(String line, String key) {
    for (String part : line.trim().split("\\s+")) {
      if (part.startsWith(key + "=")) {
        return part.substring(key.length() + 1);
      }
    }
    return null;
  }

  private synchronized void remember(String line) {
    tail.addLast(line);
    if (tail.size() > TAIL_LINES) {
      tail.removeFirst();
    }
  }

  private void pump(InputStream in, boolean stdout, Consumer<String> log) {
    Thread t =
        new Thread(
            () -> {
              try (BufferedReader r =
                  new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                  remember(line);
                  if (stdout && line.startsWith("PDSERVE-READY")) {
                    ready.complete(line);
                  } else {
                    log.accept("[" + id + "] " + line);
                  }
                }
              } catch (IOException e) {
                // the process ended
              }
              if (stdout) {
                ready.completeExceptionally(new IOException("exited with code " + exitCode()));
              }
            },
            "local-" + id + (stdout ? "-out" : "-err"));
    t.setDaemon(true);
    t.start();
  }

  private String exitCode() {
    try {
      return Integer.toString(process.waitFor());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "?";
    }
  }
}
