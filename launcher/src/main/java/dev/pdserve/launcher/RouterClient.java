package dev.pdserve.launcher;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.loadgen.ApiKey;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.sampling.FinishReason;
import io.grpc.ManagedChannel;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/** A small blocking client of a router's Generate API. */
final class RouterClient implements AutoCloseable {
  private final ManagedChannel channel;

  RouterClient(String address) {
    this(address, TransportSecurity.plaintext(), ApiKey.NONE);
  }

  /**
   * A client over {@code security} (TLS to a router whose public API has it on), every call
   * presenting {@code apiKey}.
   */
  RouterClient(String address, TransportSecurity security, ApiKey apiKey) {
    this.channel = ApiKeyOption.channel(address, security, apiKey);
  }

  /**
   * Streams one request; {@code onText} gets each text delta. Throws the router's
   * StatusRuntimeException on failure.
   */
  GenerateResult generate(GenerateRequest req, double timeoutSeconds, Consumer<String> onText) {
    long t0 = System.nanoTime();
    double ttft = -1;
    List<Integer> ids = new ArrayList<>();
    List<Double> logprobs = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    Completion completion = null;
    Iterator<GenerateResponse> it =
        GenerationGrpc.newBlockingStub(channel)
            .withDeadlineAfter((long) (timeoutSeconds * 1000), TimeUnit.MILLISECONDS)
            .generate(RouterClientRunner.toProto(req));
    while (it.hasNext()) {
      GenerateResponse r = it.next();
      if (r.hasDelta()) {
        if (ttft < 0) {
          ttft = (System.nanoTime() - t0) / 1e6;
        }
        ids.addAll(r.getDelta().getTokenIdsList());
        r.getDelta().getLogprobsList().forEach(lp -> logprobs.add((double) lp));
        text.append(r.getDelta().getText());
        onText.accept(r.getDelta().getText());
      } else if (r.hasCompletion()) {
        completion = r.getCompletion();
      }
    }
    if (completion == null) {
      throw new UserFacingException(
          "UNAVAILABLE: the router ended the stream without a completion", 1);
    }
    return new GenerateResult(
        req.requestId(),
        ids.stream().mapToInt(Integer::intValue).toArray(),
        text.toString(),
        FinishReason.valueOf(completion.getFinishReason().toUpperCase()),
        completion.getStopReason().isEmpty() ? null : completion.getStopReason(),
        completion.getUsage().getPromptTokens(),
        completion.getUsage().getCachedTokens(),
        logprobs.stream().mapToDouble(Double::doubleValue).toArray(),
        ttft,
        (System.nanoTime() - t0) / 1e6);
  }

  @Override
  public void close() {
    channel.shutdownNow();
  }
}
