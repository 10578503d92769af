package dev.pdserve.core.config;

import java.math.BigDecimal;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How a node stops when told to (SIGTERM): it drains — readiness NOT_SERVING, no new work, running
 * work finished or handed to another node — for at most {@code timeout}, then closes.
 *
 * @param timeout the drain bound ({@code pdserve.shutdown.timeout-seconds}, {@code
 *     --shutdown-timeout}); 0 = close at once
 */
public record ShutdownSettings(Duration timeout) {
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);
  public static final Duration MAX_TIMEOUT = Duration.ofSeconds(3600);
  public static final ShutdownSettings DEFAULTS = new ShutdownSettings(DEFAULT_TIMEOUT);

  private static final Pattern DURATION =
      Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h)?", Pattern.CASE_INSENSITIVE);

  public ShutdownSettings {
    if (timeout.isNegative() || timeout.compareTo(MAX_TIMEOUT) > 0) {
      throw new IllegalArgumentException(
          "shutdown timeout must be 0..3600 s, got " + timeout.toMillis() + " ms");
    }
  }

  /**
   * Parses a shutdown timeout: {@code 30s}, {@code 2m}, {@code 500ms}, {@code 1h}, or a plain
   * number of seconds ({@code 30}, {@code 0.5}); checks it is within 0..3600 s.
   *
   * @throws IllegalArgumentException with a message saying what is accepted
   */
  public static Duration parseTimeout(String text) {
    Matcher m = DURATION.matcher(text == null ? "" : text.trim());
    if (!m.matches()) {
      throw new IllegalArgumentException(
          "expected a duration like 30s, 2m, 500ms or a number of seconds, got '" + text + "'");
    }
    BigDecimal n = new BigDecimal(m.group(1));
    String unit = m.group(2) == null ? "s" : m.group(2).toLowerCase(Locale.ROOT);
    BigDecimal millis =
        switch (unit) {
          case "ms" -> n;
          case "s" -> n.scaleByPowerOfTen(3);
          case "m" -> n.multiply(BigDecimal.valueOf(60_000));
          default -> n.multiply(BigDecimal.valueOf(3_600_000));
        };
    if (millis.compareTo(BigDecimal.valueOf(MAX_TIMEOUT.toMillis())) > 0) {
      throw new IllegalArgumentException("must be 0..3600 s, got '" + text + "'");
    }
    return Duration.ofMillis(millis.longValue());
  }
}
