package dev.pdserve.launcher.node;

import java.time.Duration;

/**
 * How a node's polling wait lets time pass between two looks: a sleep in production; a test
 * advances a {@code FakeTicker} instead, so the wait runs without real time passing.
 */
@FunctionalInterface
interface Pause {
  void pause() throws InterruptedException;

  static Pause sleeping(Duration interval) {
    long millis = interval.toMillis();
    return () -> Thread.sleep(millis);
  }
}
