package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.model.engine.GenerateRequest;
import dev.pdserve.model.engine.GenerateResult;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.Prompt;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "generate",
    mixinStandardHelpOptions = true,
    description = "Generate a reply, streaming it to stdout (or one JSON object with --json).")
final class GenerateCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;

  @ArgGroup(exclusive = true, multiplicity = "1")
  Target target;

  static final class Target {
    @Option(
        names = "--local",
        required = true,
        description = "Run the single-process reference engine in this process.")
    boolean local;

    @Option(
        names = "--router",
        required = true,
        paramLabel = "HOST:PORT",
        description = "Send the request to a pdserve router.")
    String router;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  PromptSource promptSource;

  @Mixin TlsClientOptions tls = new TlsClientOptions();

  static final class PromptSource {
    @Option(
        names = "--prompt",
        required = true,
        paramLabel = "TEXT",
        description = "The prompt (a user message unless --raw).")
    String text;

    @Option(
        names = "--prompt-file",
        required = true,
        paramLabel = "PATH",
        description = "Read the prompt from a UTF-8 file.")
    Path file;

    @Option(
        names = "--prompt-ids",
        required = true,
        split = ",",
        paramLabel = "ID",
        description = "The prompt as token ids (comma-separated), used as given.")
    int[] ids;
  }

  @Option(
      names = ImageFiles.OPTION,
      paramLabel = "FILE",
      description =
          "An image (PNG or JPEG) for the prompt; repeat for several. With --prompt or --prompt-file"
              + " the images come before the text in the user message, as the chat template places"
              + " them; with --raw or --prompt-ids each <|IMAGE_START|><|IMAGE_END|> pair takes the"
              + " next image.")
  List<Path> imageFiles = new ArrayList<>();

  @Mixin ModelOptions model;
  @Mixin SamplingOptions sampling;
  @Mixin ApiKeyOption apiKey;

  @Option(
      names = "--raw",
      description = "Send the prompt as plain text, without the chat template.")
  boolean raw;

  @Option(names = "--no-thinking", description = "Chat template in non-thinking mode.")
  boolean noThinking;

  @Option(
      names = "--json",
      description =
          "Print one JSON object (token_ids, text, finish_reason, usage, timings) instead of streaming.")
  boolean json;

  @Option(
      names = "--request-id",
      paramLabel = "ID",
      description = "Request id (default: generated).")
  String requestId;

  @Option(
      names = "--timeout",
      paramLabel = "SECONDS",
      defaultValue = "120",
      description = "Deadline of a --router request. Default: ${DEFAULT-VALUE}.")
  double timeoutSeconds;

  @Override
  public Integer call() throws Exception {
    List<EncodedImage> images = ImageFiles.read(spec.commandLine(), imageFiles);
    Prompt prompt = prompt(images);
    String id =
        requestId != null ? requestId : "gen-" + UUID.randomUUID().toString().substring(0, 8);
    GenerateRequest req;
    try {
      req = new GenerateRequest(id, prompt, sampling.params(), !noThinking);
    } catch (InvalidRequestException e) {
      throw badOption(e);
    }
    PrintWriter out = spec.commandLine().getOut();
    if (target.router != null) {
      try {
        req.sampling()
            .validate(1, Integer.MAX_VALUE / 2, Integer.MAX_VALUE); // the router checks the rest
      } catch (InvalidRequestException e) {
        throw badOption(e);
      }
      return RouterClientRunner.run(
          target.router,
          tls.security(),
          apiKey.apiKey(),
          req,
          json,
          timeoutSeconds,
          out,
          spec.commandLine().getErr());
    }
    if (!images.isEmpty() && model.config().vision().isEmpty()) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          ImageFiles.OPTION
              + ": model "
              + model.config().name()
              + " has no vision encoder; it takes no images");
    }
    try (LoadedModel m = LoadedModel.load(model.spec());
        ReferenceEngine engine = new ReferenceEngine(m, OrtRuntime.shared(), model.numerics())) {
      GenerateResult r;
      try {
        r =
            engine.generate(
                req,
                e -> {
                  if (!json) {
                    out.print(e.text());
                    out.flush();
                  }
                });
      } catch (InvalidRequestException e) {
        throw imageError(e).orElseThrow(() -> badOption(e));
      }
      if (json) {
        out.println(toJson(r));
      } else {
        out.println();
      }
      out.flush();
      return 0;
    }
  }

  /**
   * The prompt: token ids, raw text, or a user message; images go with the ids or the raw text (one
   * per image slot), or as parts of the user message before its text.
   */
  private Prompt prompt(List<EncodedImage> images) {
    if (promptSource.ids != null) {
      return new Prompt.Tokens(promptSource.ids, images);
    }
    String text = promptText();
    if (raw) {
      return new Prompt.Text(text, images);
    }
    if (images.isEmpty()) {
      return Prompt.user(text);
    }
    List<ContentPart> parts = new ArrayList<>();
    images.forEach(i -> parts.add(ContentPart.image(i)));
    parts.add(ContentPart.text(text));
    return new Prompt.Messages(List.of(new ChatMessage(ChatMessage.USER, parts)));
  }

  /**
   * A broken image as the router would report it (INVALID_ARGUMENT, exit 1), naming the file: the
   * engine's message starts with the image's place in the request ({@code messages[0].content[k]}
   * for the user message built by {@link #prompt}, {@code images[k]} for ids and raw text).
   */
  private Optional<UserFacingException> imageError(InvalidRequestException e) {
    boolean chat = promptSource.ids == null && !raw;
    for (int k = 0; k < imageFiles.size(); k++) {
      String label = chat ? "messages[0].content[" + k + "]" : "images[" + k + "]";
      if (e.getMessage().startsWith(label + ": ")) {
        return Optional.of(
            new UserFacingException(
                "INVALID_ARGUMENT: "
                    + e.getMessage()
                    + " ("
                    + ImageFiles.OPTION
                    + " "
                    + imageFiles.get(k)
                    + ")",
                CliErrors.FAILED));
      }
    }
    return Optional.empty();
  }

  private String promptText() {
    if (promptSource.file == null) {
      return promptSource.text;
    }
    try {
      return Files.readString(promptSource.file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--prompt-file " + promptSource.file + ": no such file");
    } catch (IOException e) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--prompt-file " + promptSource.file + ": " + e.getMessage());
    }
  }

  private CommandLine.ParameterException badOption(InvalidRequestException e) {
    String option =
        e.field().equals("images") ? ImageFiles.OPTION : SamplingOptions.optionFor(e.field());
    return new CommandLine.ParameterException(spec.commandLine(), option + ": " + e.getMessage());
  }

  static final ObjectMapper JSON = new ObjectMapper();

  static String toJson(GenerateResult r) {
    ObjectNode o = JSON.createObjectNode();
    o.put("request_id", r.requestId());
    ArrayNode ids = o.putArray("token_ids");
    for (int t : r.tokenIds()) {
      ids.add(t);
    }
    o.put("text", r.text());
    o.put("finish_reason", r.finishReason().wireName());
    if (r.stopReason() != null) {
      o.put("stop_reason", r.stopReason());
    }
    ObjectNode usage = o.putObject("usage");
    usage.put("prompt_tokens", r.promptTokens());
    usage.put("completion_tokens", r.completionTokens());
    usage.put("cached_tokens", r.cachedTokens());
    boolean anyLogprob = false;
    for (double lp : r.logprobs()) {
      anyLogprob |= !Double.isNaN(lp);
    }
    if (anyLogprob) {
      ArrayNode lps = o.putArray("logprobs");
      for (double lp : r.logprobs()) {
        lps.add(lp);
      }
    }
    ObjectNode t = o.putObject("timings");
    t.put("time_to_first_token_ms", round(r.prefillMillis()));
    t.put("total_ms", round(r.totalMillis()));
    return o.toString();
  }

  private static double round(double v) {
    return Math.round(v * 100) / 100.0;
  }
}
