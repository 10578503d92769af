package dev.pdserve.launcher;

import dev.pdserve.model.memory.MemoryPlan;
import picocli.CommandLine;

/**
 * Turns exceptions from a command into one line on stderr and a non-zero exit code: errors a user
 * can fix (bad arguments, bad config, bad input) print their message; anything else also prints its
 * stack trace.
 */
final class CliErrors implements CommandLine.IExecutionExceptionHandler {
  static final int USAGE = 2;
  static final int FAILED = 1;

  @Override
  public int handleExecutionException(
      Exception ex, CommandLine cmd, CommandLine.ParseResult parsed) {
    if (ex instanceof CommandLine.ParameterException pe) {
      cmd.getErr().println("error: " + pe.getMessage());
      return USAGE;
    }
    if (ex instanceof IllegalArgumentException) {
      cmd.getErr().println("error: " + ex.getMessage());
      return USAGE;
    }
    if (ex instanceof MemoryPlan.InsufficientMemoryException) {
      cmd.getErr().println("error: " + ex.getMessage());
      return FAILED;
    }
    if (ex instanceof UserFacingException ufe) {
      cmd.getErr().println(ufe.getMessage());
      return ufe.exitCode();
    }
    cmd.getErr().println("error: " + ex);
    ex.printStackTrace(cmd.getErr());
    return FAILED;
  }
}
