package dev.pdserve.model.memory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * This process's resident memory as the kernel counts it ({@code /proc/self/status}): what a
 * benchmark reports beside its figures, so that weights which are meant to replace others can be
 * seen to. Empty where /proc is not there.
 */
public final class ProcessMemory {
  private ProcessMemory() {}

  /** The resident set now (VmRSS), in bytes. */
  public static OptionalLong residentBytes() {
    return field("VmRSS");
  }

  /** The largest resident set so far (VmHWM), in bytes. */
  public static OptionalLong peakResidentBytes() {
    return field("VmHWM");
  }

  /**
   * Resets the peak resident set (VmHWM) to the resident set now, so a benchmark can measure one
   * part's peak after another's ({@code /proc/self/clear_refs}, Linux 4.0+); false where that
   * cannot be done.
   */
  public static boolean resetPeak() {
    try {
      Files.writeString(Path.of("/proc/self/clear_refs"), "5");
      return true;
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }

  private static OptionalLong field(String name) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith(name + ":")) {
          String[] parts = line.substring(name.length() + 1).trim().split("\\s+");
          return OptionalLong.of(Long.parseLong(parts[0]) * 1024);
        }
      }
    } catch (IOException | RuntimeException e) {
      return OptionalLong.empty();
    }
    return OptionalLong.empty();
  }
}
