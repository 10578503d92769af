package dev.pdserve.launcher;

import picocli.CommandLine;

/** Entry point of the {@code pdserve} command line. */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs the CLI and returns its exit code (tests call this instead of {@link #main}). */
  public static int run(String... args) {
    CommandLine cli = new CommandLine(new PdserveCommand());
    cli.setExecutionExceptionHandler(new CliErrors());
    return cli.execute(args);
  }
}
