package dev.pdserve.core.config;

/**
 * An inclusive range of routed-expert indices, e.g. {@code 0-31}; it applies to every MoE layer and
 * every expert group (text and vision).
 *
 * @param first first expert index (inclusive)
 * @param last last expert index (inclusive)
 */
public record ExpertRange(int first, int last) {
  public ExpertRange {
    if (first < 0 || last < first) {
      throw new IllegalArgumentException("expected 0 <= first <= last, got " + first + "-" + last);
    }
  }

  /** Parses {@code "0-31"} or a single index {@code "7"}. */
  public static ExpertRange parse(String text) {
    String s = text.trim();
    int dash = s.indexOf('-');
    try {
      if (dash < 0) {
        int e = Integer.parseInt(s);
        return new ExpertRange(e, e);
      }
      return new ExpertRange(
          Integer.parseInt(s.substring(0, dash).trim()),
          Integer.parseInt(s.substring(dash + 1).trim()));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("expected an expert range like 0-31, got '" + text + "'");
    }
  }

  public boolean contains(int expert) {
    return expert >= first && expert <= last;
  }

  public int size() {
    return last - first + 1;
  }

  @Override
  public String toString() {
    return first + "-" + last;
  }
}
