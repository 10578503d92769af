package dev.pdserve.core.config;

import dev.pdserve.model.config.ModelPresets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How the text of one configuration value becomes a typed value, and what it may be. {@link #parse}
 * gets the trimmed, non-blank text and throws an {@link IllegalArgumentException} whose message
 * says what was expected and what was given ({@code must be 0..65535, got 70000}); the loader
 * reports it after the key's name. {@link #valid} and {@link #format} are how the configuration
 * reference in the README shows the valid values and a default.
 *
 * @param <T> the parsed value
 */
public sealed interface ValueType<T>
    permits ValueType.Int,
        ValueType.LongInt,
        ValueType.NonNegativeDecimal,
        ValueType.ByteSize,
        ValueType.Bool,
        ValueType.Choice,
        ValueType.Text,
        ValueType.Preset,
        ValueType.Timeout,
        ValueType.HostPorts,
        ValueType.Experts,
        ValueType.Directory,
        ValueType.RegularFile {

  /** The value {@code text} stands for; throws with a message saying what is accepted. */
  T parse(String text);

  /** The valid values, as the configuration reference shows them (e.g. {@code 0..65535}). */
  String valid();

  /** {@code value} written the way a person would set it. */
  default String format(T value) {
    return String.valueOf(value);
  }

  /** Several things wrong with one value (e.g. two bad entries of a list), each reported. */
  final class Refused extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final List<String> reasons;

    Refused(List<String> reasons) {
      super(String.join("; ", reasons));
      this.reasons = List.copyOf(reasons);
    }

    public List<String> reasons() {
      return reasons;
    }
  }

  /** An integer in {@code min..max}. */
  record Int(int min, int max) implements ValueType<Integer> {
    public Int {
      if (min > max) {
        throw new IllegalArgumentException("empty range " + min + ".." + max);
      }
    }

    @Override
    public Integer parse(String text) {
      long n;
      try {
        n = Long.parseLong(text);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(
            "must be an integer " + valid() + ", got '" + text + "'");
      }
      if (n < min || n > max) {
        throw new IllegalArgumentException("must be " + valid() + ", got " + n);
      }
      return (int) n;
    }

    @Override
    public String valid() {
      return min + ".." + max;
    }
  }

  /** Any 64-bit integer. */
  record LongInt() implements ValueType<Long> {
    @Override
    public Long parse(String text) {
      try {
        return Long.parseLong(text.trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("must be an integer, got '" + text + "'");
      }
    }

    @Override
    public String valid() {
      return "an integer";
    }
  }

  /** A finite number {@code >= 0}. */
  record NonNegativeDecimal() implements ValueType<Double> {
    @Override
    public Double parse(String text) {
      double d;
      try {
        d = Double.parseDouble(text);
      } catch (NumberFormatException e) {
        d = -1;
      }
      if (!(d >= 0) || Double.isInfinite(d)) {
        throw new IllegalArgumentException("must be a number >= 0, got '" + text + "'");
      }
      return d;
    }

    @Override
    public String valid() {
      return "a number >= 0";
    }
  }

  /**
   * A byte count in {@code min..max}: a plain number, or one with a binary suffix k/m/g/t (KiB,
   * MiB, GiB, TiB also accepted).
   *
   * @param range how {@code min..max} is written in messages ({@code 1KiB..2GiB}); empty when any
   *     count is fine
   */
  record ByteSize(long min, long max, String range) implements ValueType<Long> {
    private static final Pattern SIZE =
        Pattern.compile("(\\d+)\\s*([kmgt]i?b?)?", Pattern.CASE_INSENSITIVE);
    private static final String SUFFIXES = "kmgt";

    /** Any byte count. */
    public ByteSize() {
      this(0, Long.MAX_VALUE, "");
    }

    @Override
    public Long parse(String text) {
      Matcher m = SIZE.matcher(text);
      String suffix = m.matches() ? m.group(2) : null;
      if (!m.matches()
          || (suffix != null
              && suffix.length() == 2
              && !suffix.toLowerCase(Locale.ROOT).endsWith("i"))) {
        throw new IllegalArgumentException(
            "expected a byte count like 1073741824, 512MiB or 4g, got '" + text + "'");
      }
      int shift =
          suffix == null ? 0 : 10 * (1 + SUFFIXES.indexOf(Character.toLowerCase(suffix.charAt(0))));
      long n;
      try {
        n = Long.parseLong(m.group(1));
      } catch (NumberFormatException e) {
        n = -1;
      }
      if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
        throw new IllegalArgumentException("too large: '" + text + "'");
      }
      long bytes = n << shift;
      if (bytes < min || bytes > max) {
        throw new IllegalArgumentException("must be " + range + ", got " + bytes);
      }
      return bytes;
    }

    @Override
    public String valid() {
      return "bytes, e.g. 512m, 4GiB" + (range.isEmpty() ? "" : "; " + range);
    }

    /** The largest whole binary unit: {@code 4m}, {@code 1g}, {@code 1536k}. */
    @Override
    public String format(Long value) {
      long v = value;
      int unit = 0;
      while (unit < SUFFIXES.length() && v != 0 && (v & 1023) == 0) {
        v >>= 10;
        unit++;
      }
      return v + (unit == 0 ? "" : String.valueOf(SUFFIXES.charAt(unit - 1)));
    }
  }

  /** {@code true} or {@code false}, any case. */
  record Bool() implements ValueType<Boolean> {
    @Override
    public Boolean parse(String text) {
      if (text.equalsIgnoreCase("true")) {
        return true;
      }
      if (text.equalsIgnoreCase("false")) {
        return false;
      }
      throw new IllegalArgumentException("must be true or false, got '" + text + "'");
    }

    @Override
    public String valid() {
      return "true, false";
    }
  }

  /**
   * One of a few names, any case.
   *
   * @param choices each name as documented and the value it stands for, in documentation order
   * @param mustBe the message of a refusal, before {@code , got '...'}
   */
  record Choice<T>(Map<String, T> choices, String mustBe) implements ValueType<T> {
    public Choice {
      choices = Collections.unmodifiableMap(new LinkedHashMap<>(choices));
    }

    /** The constants of {@code type} by their names: {@code must be one of A, B, C}. */
    public static <E extends Enum<E>> Choice<E> of(Class<E> type) {
      Map<String, E> m = new LinkedHashMap<>();
      for (E e : type.getEnumConstants()) {
        m.put(e.name(), e);
      }
      return new Choice<>(m, "must be one of " + String.join(", ", m.keySet()));
    }

    /** The constants of {@code type} by their lower-case names, refused with {@code mustBe}. */
    public static <E extends Enum<E>> Choice<E> ofLowerCase(Class<E> type, String mustBe) {
      Map<String, E> m = new LinkedHashMap<>();
      for (E e : type.getEnumConstants()) {
        m.put(e.name().toLowerCase(Locale.ROOT), e);
      }
      return new Choice<>(m, mustBe);
    }

    @Override
    public T parse(String text) {
      for (Map.Entry<String, T> c : choices.entrySet()) {
        if (c.getKey().equalsIgnoreCase(text.trim())) {
          return c.getValue();
        }
      }
      throw new IllegalArgumentException(mustBe + ", got '" + text + "'");
    }

    @Override
    public String valid() {
      return String.join(", ", choices.keySet());
    }

    @Override
    public String format(T value) {
      for (Map.Entry<String, T> c : choices.entrySet()) {
        if (c.getValue().equals(value)) {
          return c.getKey();
        }
      }
      return String.valueOf(value);
    }
  }

  /**
   * Free text, or text matching a pattern.
   *
   * @param pattern what the whole text must match; empty = anything
   * @param mustBe the message of a refusal, before {@code , got '...'}
   * @param valid what the configuration reference says it may be
   */
  record Text(Optional<Pattern> pattern, String mustBe, String valid) implements ValueType<String> {
    /** Any text, described as {@code valid}. */
    public static Text any(String valid) {
      return new Text(Optional.empty(), "", valid);
    }

    /** Text matching {@code pattern}, refused with {@code mustBe}. */
    public static Text matching(Pattern pattern, String mustBe, String valid) {
      return new Text(Optional.of(pattern), mustBe, valid);
    }

    @Override
    public String parse(String text) {
      if (pattern.isPresent() && !pattern.get().matcher(text).matches()) {
        throw new IllegalArgumentException(mustBe + ", got '" + text + "'");
      }
      return text;
    }
  }

  /** The name of a built-in model shape: one of {@link ModelPresets#names()}, exactly. */
  record Preset() implements ValueType<String> {
    @Override
    public String parse(String text) {
      if (!ModelPresets.names().contains(text)) {
        throw new IllegalArgumentException(
            "unknown preset '" + text + "'; known presets: " + valid());
      }
      return text;
    }

    @Override
    public String valid() {
      return String.join(", ", ModelPresets.names());
    }
  }

  /** A drain bound: {@link ShutdownSettings#parseTimeout}. */
  record Timeout() implements ValueType<Duration> {
    @Override
    public Duration parse(String text) {
      return ShutdownSettings.parseTimeout(text);
    }

    @Override
    public String valid() {
      return "0..3600 s: `30s`, `2m`, `500ms` or plain seconds";
    }

    @Override
    public String format(Duration value) {
      long ms = value.toMillis();
      return ms % 1000 == 0 ? ms / 1000 + "s" : ms + "ms";
    }
  }

  /** A comma-separated list of {@code host:port}, listed one by one (no port ranges). */
  record HostPorts() implements ValueType<List<HostPort>> {
    @Override
    public List<HostPort> parse(String text) {
      List<HostPort> out = new ArrayList<>();
      List<String> bad = new ArrayList<>();
      for (String part : text.split(",")) {
        if (part.isBlank()) {
          continue;
        }
        try {
          out.add(HostPort.parse(part));
        } catch (IllegalArgumentException e) {
          bad.add(e.getMessage());
        }
      }
      if (!bad.isEmpty()) {
        throw new Refused(bad);
      }
      return List.copyOf(out);
    }

    @Override
    public String valid() {
      return "`host:port,host:port`";
    }
  }

  /** An inclusive range of routed-expert indices: {@link ExpertRange#parse}. */
  record Experts() implements ValueType<ExpertRange> {
    @Override
    public ExpertRange parse(String text) {
      return ExpertRange.parse(text);
    }

    @Override
    public String valid() {
      return "`FIRST-LAST`, e.g. `0-31`";
    }
  }

  /** An existing directory. */
  record Directory() implements ValueType<Path> {
    @Override
    public Path parse(String text) {
      Path dir = Path.of(text);
      if (!Files.isDirectory(dir)) {
        throw new IllegalArgumentException("no such directory: " + dir);
      }
      return dir;
    }

    @Override
    public String valid() {
      return "a directory";
    }
  }

  /** An existing readable file (a certificate, a key). */
  record RegularFile() implements ValueType<Path> {
    @Override
    public Path parse(String text) {
      Path file = Path.of(text);
      if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
        throw new IllegalArgumentException("no such readable file: " + file);
      }
      return file;
    }

    @Override
    public String valid() {
      return "a file";
    }
  }
}
