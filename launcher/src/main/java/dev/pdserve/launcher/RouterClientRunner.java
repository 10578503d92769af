package dev.pdserve.launcher;

import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.sampling.FinishReason;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** {@code pdserve generate --router}: one request to a router, streamed or as JSON. */
final class RouterClientRunner {
  private RouterClientRunner() {}

  static dev.pdserve.api.v1.GenerateRequest toProto(GenerateRequest req) {
    dev.pdserve.api.v1.GenerateRequest.Builder b =
        dev.pdserve.api.v1.GenerateRequest.newBuilder()
            .setRequestId(req.requestId())
            .setParams(ProtoConversions.sampling(req.sampling()))
            .setEnableThinking(req.enableThinking());
    if (req.prompt() instanceof Prompt.Messages m) {
      ChatMessages.Builder cm = ChatMessages.newBuilder();
      m.messages().forEach(x -> cm.addMessages(ChatMessage.newBuilder().setRole(x.role()).setContent(x.content())));
      b.setMessages(cm);
    } else if (req.prompt() instanceof Prompt.Text t) {
      b.setPrompt(t.text());
    } else {
      TokenIds.Builder ids = TokenIds.newBuilder();
      for (int id : ((Prompt.Tokens) req.prompt()).ids()) {
        ids.addIds(id);
      }
      b.setPromptTokenIds(ids);
    }
    return b.build();
  }

  static int run(String router, GenerateRequest req, boolean json, double timeoutSeconds, PrintWriter out, PrintWriter err) {
    ManagedChannel ch = NettyChannelBuilder.forTarget(router).usePlaintext().build();
    long t0 = System.nanoTime();
    double ttft = -1;
    List<Integer> ids = new ArrayList<>();
    StringBuilder text = new StringBuilder();
    List<Double> logprobs = new ArrayList<>();
    try {
      Iterator<GenerateResponse> it =
          GenerationGrpc.newBlockingStub(ch).withDeadlineAfter((long) (timeoutSeconds * 1000), TimeUnit.MILLISECONDS).generate(toProto(req));
      dev.pdserve.api.v1.Completion completion = null;
      while (it.hasNext()) {
        GenerateResponse r = it.next();
        if (r.hasDelta()) {
          if (ttft < 0) {
            ttft = (System.nanoTime() - t0) / 1e6;
          }
          ids.addAll(r.getDelta().getTokenIdsList());
          r.getDelta().getLogprobsList().forEach(lp -> logprobs.add((double) lp));
          text.append(r.getDelta().getText());
          if (!json) {
            out.print(r.getDelta().getText());
            out.flush();
          }
        } else if (r.hasCompletion()) {
          completion = r.getCompletion();
        }
      }
      if (completion == null) {
        throw new UserFacingException("UNAVAILABLE: the router ended the stream without a completion", 1);
      }
      if (json) {
        GenerateResult result =
            new GenerateResult(
                req.requestId(), ids.stream().mapToInt(Integer::intValue).toArray(), text.toString(),
                FinishReason.valueOf(completion.getFinishReason().toUpperCase()),
                completion.getStopReason().isEmpty() ? null : completion.getStopReason(), completion.getUsage().getPromptTokens(),
                completion.getUsage().getCachedTokens(), logprobs.stream().mapToDouble(Double::doubleValue).toArray(), ttft,
                (System.nanoTime() - t0) / 1e6);
        out.println(GenerateCommand.toJson(result));
      } else {
        out.println();
      }
      out.flush();
      return 0;
    } catch (StatusRuntimeException e) {
      Status s = e.getStatus();
      throw new UserFacingException(s.getCode().name() + ": " + (s.getDescription() == null ? "(no message)" : s.getDescription()), 1);
    } finally {
      ch.shutdownNow();
    }
  }
}
