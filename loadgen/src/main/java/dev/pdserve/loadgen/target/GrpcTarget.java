package dev.pdserve.loadgen.target;

import com.google.protobuf.ByteString;
import dev.pdserve.api.v1.ChatMessage;
import dev.pdserve.api.v1.ChatMessages;
import dev.pdserve.api.v1.ContentPart;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.Image;
import dev.pdserve.api.v1.ListModelsRequest;
import dev.pdserve.api.v1.ListModelsResponse;
import dev.pdserve.api.v1.ModelCard;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.api.v1.TokenIds;
import dev.pdserve.loadgen.ApiKey;
import dev.pdserve.loadgen.ClientTls;
import dev.pdserve.loadgen.dataset.BenchImage;
import dev.pdserve.loadgen.dataset.BenchRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.TimeUnit;

/**
 * The router's public API: {@code pdserve.v1.Generation/Generate} (server stream). Prompts go as
 * token ids when the dataset made ids, as raw prompt text otherwise, and a prompt with images as
 * one user message of {@code Image.data} parts followed by its text. One channel (one HTTP/2
 * connection) per target; each worker owns one.
 */
public final class GrpcTarget implements Target {
  private final String address;
  private final ManagedChannel channel;

  public GrpcTarget(String address) {
    this(address, ApiKey.NONE);
  }

  /** As above, every call presenting {@code apiKey}. */
  public GrpcTarget(String address, ApiKey apiKey) {
    this(address, apiKey, ClientTls.PLAINTEXT);
  }

  /** As above, over {@code tls} (its gRPC credentials). */
  public GrpcTarget(String address, ApiKey apiKey, ClientTls tls) {
    this.address = address;
    // Callbacks only record a time and update counters: no need for an extra executor hop.
    this.channel =
        NettyChannelBuilder.forTarget(address, tls.grpc())
            .directExecutor()
            .maxInboundMessageSize(16 << 20)
            .intercept(apiKey.interceptor())
            .build();
  }

  public ManagedChannel channel() {
    return channel;
  }

  @Override
  public ModelInfo model(String requested) {
    ListModelsResponse models;
    try {
      models =
          GenerationGrpc.newBlockingStub(channel)
              .withDeadlineAfter(30, TimeUnit.SECONDS)
              .listModels(ListModelsRequest.getDefaultInstance());
    } catch (StatusRuntimeException e) {
      throw new IllegalStateException(
          "cannot list models at the router "
              + address
              + ": "
              + e.getStatus().getCode()
              + ": "
              + e.getStatus().getDescription()
              + " (is --router HOST:PORT a running pdserve router?)",
          e);
    }
    if (models.getModelsCount() == 0) {
      throw new IllegalStateException("the router " + address + " lists no model");
    }
    for (ModelCard m : models.getModelsList()) {
      if (requested == null || requested.isEmpty() || m.getId().equals(requested)) {
        return new ModelInfo(m.getId(), m.getMaxContext(), m.getVocabSize());
      }
    }
    // unknown name: let the router answer NOT_FOUND per request, but warn through the id
    throw new IllegalArgumentException(
        "--model "
            + requested
            + " is not served by "
            + address
            + "; it serves "
            + models.getModelsList().stream().map(ModelCard::getId).toList());
  }

  @Override
  public void send(RequestTimer timer, RequestOptions options) {
    BenchRequest r = timer.request();
    GenerateRequest.Builder req =
        GenerateRequest.newBuilder()
            .setRequestId(timer.requestId())
            .setModel(options.model())
            .setParams(
                SamplingParams.newBuilder()
                    .setTemperature((float) options.temperature())
                    .setMaxTokens(r.outputTokens())
                    .setIgnoreEos(options.ignoreEos()));
    if (!r.images().isEmpty()) {
      req.setMessages(ChatMessages.newBuilder().addMessages(userMessage(r)));
    } else if (r.promptIds() != null) {
      TokenIds.Builder ids = TokenIds.newBuilder();
      for (int t : r.promptIds()) {
        ids.addIds(t);
      }
      req.setPromptTokenIds(ids);
    } else {
      req.setPrompt(r.promptText());
    }
    GenerateRequest built = req.build();
    timer.sent();
    GenerationGrpc.newStub(channel)
        .withDeadlineAfter((long) (options.timeoutSeconds() * 1000), TimeUnit.MILLISECONDS)
        .generate(
            built,
            new StreamObserver<GenerateResponse>() {
              private String finishReason;

              @Override
              public void onNext(GenerateResponse m) {
                if (m.hasDelta()) {
                  timer.tokens(m.getDelta().getTokenIdsCount());
                } else if (m.hasCompletion()) {
                  var u = m.getCompletion().getUsage();
                  timer.usage(u.getPromptTokens(), u.getCompletionTokens(), u.getCachedTokens());
                  finishReason = m.getCompletion().getFinishReason();
                }
              }

              @Override
              public void onError(Throwable t) {
                Status s = Status.fromThrowable(t);
                timer.fail(
                    s.getCode().name(),
                    s.getDescription() == null ? String.valueOf(t) : s.getDescription());
              }

              @Override
              public void onCompleted() {
                if (finishReason == null) {
                  timer.fail("NO_COMPLETION", "the stream ended without a Completion message");
                } else {
                  timer.succeed(finishReason);
                }
              }
            });
  }

  /**
   * A user message of the request's images ({@code Image.data}, before the text, as the chat
   * template places them) and its text.
   */
  static ChatMessage userMessage(BenchRequest r) {
    ChatMessage.Builder m = ChatMessage.newBuilder().setRole("user");
    for (BenchImage img : r.images()) {
      m.addParts(
          ContentPart.newBuilder()
              .setImage(
                  Image.newBuilder()
                      .setData(ByteString.copyFrom(img.data()))
                      .setMediaType(img.mediaType())));
    }
    return m.addParts(ContentPart.newBuilder().setText(r.promptText())).build();
  }

  @Override
  public String describe() {
    return "grpc " + address;
  }

  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
