package dev.pdserve.launcher.faults;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * Not a test: {@code scripts/faults/run.sh} runs it once through Maven to write the test classpath
 * (which surefire sets as {@code java.class.path}) to the file {@code pdserve.faults.classpath}
 * names, then starts {@link FaultSuite} with it — the suite runs longer than surefire lets a fork.
 */
class FaultSuiteClasspath {
  @Test
  @EnabledIfSystemProperty(named = "pdserve.faults.classpath", matches = ".+")
  void writeClasspath() throws Exception {
    Files.writeString(
        Path.of(System.getProperty("pdserve.faults.classpath")),
        System.getProperty("java.class.path"));
  }
}
