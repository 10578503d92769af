package dev.pdserve.launcher;

import com.google.protobuf.ByteString;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.Image;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.core.grpc.ProtoConversions;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.loadgen.ApiKey;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
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
      m.messages().forEach(x -> cm.addMessages(message(x)));
      b.setMessages(cm);
    } else {
      if (req.prompt() instanceof Prompt.Text t) {
        b.setPrompt(t.text());
      } else {
        TokenIds.Builder ids = TokenIds.newBuilder();
        for (int id : ((Prompt.Tokens) req.prompt()).ids()) {
          ids.addIds(id);
        }
        b.setPromptTokenIds(ids);
      }
      req.prompt().images().forEach(i -> b.addImages(image(i)));
    }
    return b.build();
  }

  /** A text-only message as {@code content}; one with images as its parts, in order. */
  private static ChatMessage message(dev.pdserve.model.tokenizer.ChatMessage m) {
    ChatMessage.Builder b = ChatMessage.newBuilder().setRole(m.role());
    if (m.images().isEmpty()) {
      return b.setContent(m.content()).build();
    }
    for (ContentPart p : m.parts()) {
      if (p instanceof ContentPart.Image i) {
        b.addParts(dev.pdserve.api.v1.ContentPart.newBuilder().setImage(image(i.image())));
      } else {
        b.addParts(
            dev.pdserve.api.v1.ContentPart.newBuilder().setText(((ContentPart.Text) p).text()));
      }
    }
    return b.build();
  }

  /** The file's bytes as {@code Image.data}, with the media type its signature shows. */
  static Image image(EncodedImage image) {
    byte[] bytes = image.bytes();
    return Image.newBuilder()
        .setData(ByteString.copyFrom(bytes))
        .setMediaType(ImageFiles.mediaType(bytes))
        .build();
  }

  static int run(
      String router,
      TransportSecurity security,
      ApiKey apiKey,
      GenerateRequest req,
      boolean json,
      double timeoutSeconds,
      PrintWriter out,
      PrintWriter err) {
    try (RouterClient client = new RouterClient(router, security, apiKey)) {
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
