package dev.pdserve.router.http;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.pdserve.core.serving.ServingException;
import org.junit.jupiter.api.Test;

/** The HTTP form of the router's refusals: 429 with a Retry-After from the router's hint. */
class ApiErrorTest {
  @Test
  void anOverloadRefusalIs429WithRetryAfterFromTheForecast() {
    ApiError e =
        ApiError.of(
            ServingException.exhausted(
                "router overloaded: a new request would wait about 8.4 s for the 21000 prompt"
                    + " tokens ahead of it (at 2500 prompt tokens/s, as measured), more than the"
                    + " 6.0 s allowed (pdserve.router.max-queue-delay); retry after 2400 ms"),
            "messages");
    assertEquals(429, e.status());
    assertEquals("rate_limit_error", e.type());
    assertEquals("overloaded", e.code());
    assertEquals(3, e.retryAfterSeconds(), "2400 ms rounded up to whole seconds");
  }

  @Test
  void aShortRetryHintIsAtLeastOneSecond() {
    ApiError e =
        ApiError.of(
            ServingException.exhausted("router overloaded: ...; retry after 100 ms"), "prompt");
    assertEquals(1, e.retryAfterSeconds());
  }

  @Test
  void aFullQueueKeepsItsCode() {
    ApiError e =
        ApiError.of(
            ServingException.exhausted(
                "router queue is full: 1 requests running and 2 waiting (limits 1 and 2); retry"
                    + " after 1000 ms"),
            "messages");
    assertEquals(429, e.status());
    assertEquals("queue_full", e.code());
    assertEquals(1, e.retryAfterSeconds());
  }

  @Test
  void lostExpertsAre503WithTheirOwnCode() {
    String m =
        "decode on decode node d0: experts 3, 7 of layer 2 have no live shard (shard e1 left the cluster)";
    ApiError e =
        ApiError.of(new dev.pdserve.core.serving.ExpertsUnavailableException(m, null), "messages");
    assertEquals(503, e.status());
    assertEquals("service_unavailable_error", e.type());
    assertEquals("experts_unavailable", e.code());
    assertEquals(m, e.getMessage());
    assertEquals(1, e.retryAfterSeconds());
  }
}
