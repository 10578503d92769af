package dev.pdserve.launcher;

import java.io.PrintWriter;
import picocli.CommandLine;

/** Entry point of the {@code pdserve} command line. */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs the CLI and returns its exit code (tests call this instead of {@link #main}). */
  public static int run(String... args) {
    return run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
  }

  /**
   * The command tree, not run: for tools that check an argument list parses (such as the Kubernetes
   * manifests' container arguments).
   */
  public static CommandLine commandLine() {
    return new CommandLine(new PdserveCommand());
  }

  /** Runs the CLI with the given output streams. */
  public static int run(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cli = commandLine();
    cli.setOut(out);
    cli.setErr(err);
    cli.setExecutionExceptionHandler(new CliErrors());
    cli.setParameterExceptionHandler(
        (ex, arguments) -> {
          CommandLine c = ex.getCommandLine();
          c.getErr().println("error: " + ex.getMessage());
          c.getErr().println("See '" + c.getCommandSpec().qualifiedName() + " --help'.");
          return CliErrors.USAGE;
        });
    return cli.execute(args);
  }
}
