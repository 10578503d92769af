package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The README's configuration table is {@link ConfigKeys} rendered: one row per key with its
 * default, valid values, meaning and environment variable. Run with {@value #UPDATE}{@code =true}
 * to rewrite the table between the markers instead of comparing (see {@link #REGENERATE}).
 */
class ConfigReferenceTest {
  static final String UPDATE = "pdserve.updateReadme";
  static final String REGENERATE =
      "mvn -B -o -pl core -am test -Dtest=ConfigReferenceTest"
          + " -Dsurefire.failIfNoSpecifiedTests=false -D"
          + UPDATE
          + "=true";

  private static final Path README = Path.of("..", "README.md").toAbsolutePath().normalize();
  private static final String BEGIN = "<!-- config-keys:begin";
  private static final String END = "<!-- config-keys:end -->";

  /** The table's lines, markers included. */
  static String render() {
    StringBuilder b = new StringBuilder();
    b.append(BEGIN)
        .append(": generated from ConfigKeys (core); to update: ")
        .append(REGENERATE)
        .append(" -->\n");
    b.append("| key | default | valid values | meaning | environment |\n");
    b.append("|---|---|---|---|---|\n");
    for (ConfigKey<?> key : ConfigKeys.ALL) {
      b.append("| `")
          .append(key.name())
          .append("` | ")
          .append(cell(defaultCell(key)))
          .append(" | ")
          .append(cell(key.type().valid()))
          .append(" | ")
          .append(cell(key.doc()))
          .append(" | `")
          .append(key.environmentVariable())
          .append("` |\n");
    }
    b.append(END).append('\n');
    return b.toString();
  }

  private static String defaultCell(ConfigKey<?> key) {
    if (key.defaultText().isEmpty()) {
      return "—";
    }
    return key.defaultValue().isPresent() ? "`" + key.defaultText() + "`" : key.defaultText();
  }

  private static String cell(String text) {
    return text.replace("|", "\\|").replace("\n", " ");
  }

  @Test
  void readmeConfigurationTableIsRenderedFromTheKeys() throws IOException {
    String readme = Files.readString(README, StandardCharsets.UTF_8);
    int begin = readme.indexOf(BEGIN);
    int end = readme.indexOf(END);
    assertTrue(
        begin >= 0 && end > begin && readme.indexOf(BEGIN, begin + 1) < 0,
        README
            + " must hold one configuration table between '"
            + BEGIN
            + " ... -->' and '"
            + END
            + "'");
    int endOfSection = end + END.length() + 1;
    String section = readme.substring(begin, Math.min(endOfSection, readme.length()));
    String expected = render();
    if (Boolean.getBoolean(UPDATE)) {
      String updated = readme.substring(0, begin) + expected + readme.substring(endOfSection);
      Files.writeString(README, updated, StandardCharsets.UTF_8);
      return;
    }
    if (!section.equals(expected)) {
      fail(
          README
              + ": the configuration table differs from ConfigKeys at "
              + firstDifference(section, expected)
              + "\nRegenerate it with: "
              + REGENERATE);
    }
  }

  private static String firstDifference(String actual, String expected) {
    List<String> a = actual.lines().toList();
    List<String> e = expected.lines().toList();
    for (int i = 0; i < Math.max(a.size(), e.size()); i++) {
      String al = i < a.size() ? a.get(i) : "(nothing)";
      String el = i < e.size() ? e.get(i) : "(nothing)";
      if (!al.equals(el)) {
        return "line " + (i + 1) + " of the table:\n  README:     " + al + "\n  ConfigKeys: " + el;
      }
    }
    return "the line ends";
  }
}
