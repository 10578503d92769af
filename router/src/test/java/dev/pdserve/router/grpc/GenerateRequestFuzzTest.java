package dev.pdserve.router.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.core.grpc.GrpcErrors;
import dev.pdserve.core.serving.ServingException;
import dev.pdserve.router.EmptyClusterRouter;
import dev.pdserve.router.ResponseSink;
import dev.pdserve.router.Router;
import io.grpc.Status;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes the public gRPC API's request validation: any bytes that gRPC's protobuf marshaller would
 * parse as a {@code dev.pdserve.api.v1.GenerateRequest} are converted as {@link
 * GenerationGrpcService} converts them ({@link GenerateRequests}) and submitted to a real router
 * (rendering with the tiny preset's byte tokenizer, sampling and context validation) over a cluster
 * without nodes ({@link EmptyClusterRouter}). Only a client's error may come out: INVALID_ARGUMENT,
 * NOT_FOUND for another model, or, once every check passed, the empty cluster's UNAVAILABLE. Never
 * another status, never an exception the adapter would report as INTERNAL. See docs/SECURITY.md,
 * "Fuzzing".
 */
class GenerateRequestFuzzTest {
  private static final String MODEL = EmptyClusterRouter.MODEL.name();

  private static Router router; // made on the first run, so that its classes are instrumented

  /** The router's answer to an accepted request: it never comes (no request starts). */
  private static final ResponseSink NO_ANSWER =
      new ResponseSink() {
        @Override
        public void onDelta(int[] tokenIds, String text, float[] logprobs) {
          fail("a request started on a cluster without nodes");
        }

        @Override
        public void onComplete(
            String finishReason,
            String stopReason,
            int promptTokens,
            int completionTokens,
            int cachedTokens) {
          fail("a request completed on a cluster without nodes");
        }

        @Override
        public void onError(ServingException e) {
          fail("a request failed after it was accepted on a cluster without nodes: " + e);
        }
      };

  @FuzzTest(maxDuration = "20s")
  void anyRequestIsValidatedIntoAClientError(byte[] bytes) {
    GenerateRequest req;
    try {
      req = GenerateRequest.parseFrom(bytes);
    } catch (InvalidProtocolBufferException e) {
      return; // gRPC's marshaller refuses it before any of our code runs
    }
    checkRefusedAsTheClientsError(req);
  }

  /** The harness tells a request that passed every check from one that was refused. */
  @Test
  void validRequestPassesEveryCheckAndInvalidOneIsRefused() {
    GenerateRequest ok =
        GenerateRequest.newBuilder()
            .setPrompt("hi")
            .setParams(SamplingParams.newBuilder().setMaxTokens(4))
            .build();
    assertEquals(Status.Code.UNAVAILABLE, checkRefusedAsTheClientsError(ok), "a valid request");
    GenerateRequest bad = ok.toBuilder().setParams(SamplingParams.newBuilder().setTopP(2f)).build();
    assertEquals(Status.Code.INVALID_ARGUMENT, checkRefusedAsTheClientsError(bad), "top_p 2");
  }

  @AfterAll
  static void closeRouter() {
    if (router != null) {
      router.close();
    }
  }

  /** The status the client gets for {@code req}, checked to be a client's error. */
  private static Status.Code checkRefusedAsTheClientsError(GenerateRequest req) {
    if (router == null) {
      router = EmptyClusterRouter.create();
    }
    String id = req.getRequestId().isEmpty() ? "req-fuzz" : req.getRequestId();
    Status status;
    try {
      router.submit(GenerateRequests.toDomain(id, req, MODEL), NO_ANSWER, 0);
      throw new AssertionError("a cluster without nodes accepted " + req);
    } catch (ServingException | IllegalArgumentException e) {
      status = GrpcErrors.toStatus(e);
    }
    String what = status + " for " + req;
    switch (status.getCode()) {
      case INVALID_ARGUMENT -> assertTrue(status.getDescription() != null, "says why; " + what);
      case NOT_FOUND ->
          assertTrue(status.getDescription().contains("is not served here"), "a model; " + what);
      case UNAVAILABLE ->
          assertTrue(
              EmptyClusterRouter.passedValidation(status.getDescription()),
              "only the empty cluster is unavailable; " + what);
      default -> fail("a client must not get " + what);
    }
    return status.getCode();
  }
}
