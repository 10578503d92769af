package dev.pdserve.launcher;

import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.Prompt;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;

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
      m.messages()
          .forEach(
              x ->
                  cm.addMessages(
                      ChatMessage.newBuilder().setRole(x.role()).setContent(x.content())));
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

  static int run(
      String router,
      GenerateRequest req,
      boolean json,
      double timeoutSeconds,
      PrintWriter out,
      PrintWriter err) {
    try (RouterClient client = new RouterClient(router)) {
      GenerateResult result =
          client.generate(
              req,
              timeoutSeconds,
              text -> {
                if (!json) {
                  out.print(text);
                  out.flush();
                }
              });
      out.println(json ? GenerateCommand.toJson(result) : "");
      out.flush();
      return 0;
    } catch (StatusRuntimeException e) {
      Status s = e.getStatus();
      throw new UserFacingException(
          s.getCode().name()
              + ": "
              + (s.getDescription() == null ? "(no message)" : s.getDescription()),
          1);
    }
  }
}
