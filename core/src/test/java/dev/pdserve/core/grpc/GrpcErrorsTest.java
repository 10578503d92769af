package dev.pdserve.core.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.pdserve.core.serving.ExpertsUnavailableException;
import dev.pdserve.core.serving.ServingException;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.junit.jupiter.api.Test;

/** Statuses carry messages for people (no class names) and say when experts, not a node, failed. */
class GrpcErrorsTest {
  @Test
  void anUnexpectedExceptionIsInternalWithItsMessageButNotItsClass() {
    Status s = GrpcErrors.toStatus(new IllegalStateException("the pool is closed"));
    assertEquals(Status.Code.INTERNAL, s.getCode());
    assertEquals("internal error: the pool is closed", s.getDescription());
    Status bare = GrpcErrors.toStatus(new NullPointerException());
    assertEquals("internal error (see the node's log)", bare.getDescription());
  }

  @Test
  void lostExpertsTravelAsUnavailableMarkedSoAndComeBackAsThatClass() {
    ServingException wrapped =
        ServingException.unavailable(
            "decode step failed: experts 3 of layer 2 have no live shard",
            new ExpertsUnavailableException("experts 3 of layer 2 have no live shard", null));
    StatusRuntimeException wire = GrpcErrors.toException(wrapped);
    assertEquals(Status.Code.UNAVAILABLE, wire.getStatus().getCode());
    assertEquals(GrpcErrors.FAULT_EXPERTS, wire.getTrailers().get(GrpcErrors.FAULT));

    ServingException back = GrpcErrors.fromCall(wire, "decode on decode node d0");
    assertInstanceOf(ExpertsUnavailableException.class, back);
    assertEquals(
        "decode on decode node d0: decode step failed: experts 3 of layer 2 have no live shard",
        back.getMessage());
    assertFalse(back.getMessage().contains("Exception"));
  }

  @Test
  void aPlainUnavailableIsNoExpertFault() {
    StatusRuntimeException wire =
        GrpcErrors.toException(ServingException.unavailable("node is stopping"));
    assertNull(wire.getTrailers());
    ServingException back = GrpcErrors.fromCall(wire, "prefill on prefill node p0");
    assertFalse(back instanceof ExpertsUnavailableException);
    assertEquals(ServingException.Kind.UNAVAILABLE, back.kind());
  }
}
