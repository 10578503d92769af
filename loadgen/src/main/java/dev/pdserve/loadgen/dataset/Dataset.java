package dev.pdserve.loadgen.dataset;

import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * A deterministic request stream: request {@code i} is a pure function of the seed and {@code i},
 * so independent workers can each build their own slice of one stream. Negative indices are warm-up
 * requests.
 */
public interface Dataset {
  /** Request {@code index} of the stream. */
  BenchRequest get(long index);

  /** How many distinct requests the dataset has, when it is finite (a trace). */
  default OptionalLong size() {
    return OptionalLong.empty();
  }

  /**
   * Arrival time of request {@code index} in seconds from the start, when the dataset dictates it
   * (a trace).
   */
  default OptionalDouble arrivalSeconds(long index) {
    return OptionalDouble.empty();
  }

  /** A short description for reports, e.g. {@code random(in=128, out=32, range=0.0)}. */
  String describe();
}
