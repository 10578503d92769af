package dev.pdserve.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.ImageTokenIds;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.onnx.OrtRuntime;
import dev.pdserve.model.sampling.InvalidRequestException;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.tokenizer.ChatMessage;
import dev.pdserve.model.tokenizer.ChatTemplate;
import dev.pdserve.model.tokenizer.ContentPart;
import dev.pdserve.model.vision.EncodedImage;
import dev.pdserve.model.vision.TestImages;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The reference engine with images: prompts, generation, and which tokens use vision experts. */
class ReferenceEngineVisionTest {
  static LoadedModel model;
  static ReferenceEngine engine;
  static ImageTokenIds ids;

  // 56 x 56 pixels: 4 x 4 patches, 2 x 2 = 4 image tokens; 84 x 56: 6 x 4 patches, 3 x 2 = 6.
  static final EncodedImage SQUARE = TestImages.png(56, 56, 1);
  static final EncodedImage WIDE = TestImages.png(84, 56, 2);
  static final EncodedImage OTHER = TestImages.png(56, 56, 3);

  @BeforeAll
  static void setUp() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    engine = new ReferenceEngine(model, OrtRuntime.shared());
    ids = model.config().vision().orElseThrow().tokens();
  }

  @AfterAll
  static void tearDown() {
    engine.close();
    model.close();
  }

  static Prompt chat(Object... parts) {
    List<ContentPart> content = new ArrayList<>();
    for (Object p : parts) {
      content.add(
          p instanceof EncodedImage img ? ContentPart.image(img) : ContentPart.text((String) p));
    }
    return new Prompt.Messages(List.of(new ChatMessage(ChatMessage.USER, content)));
  }

  static String placeholders(int n) {
    return ImageTokenIds.PLACEHOLDER_TOKEN.repeat(n);
  }

  @Test
  void theChatTemplateWritesPictureNBeforeEachImageAndExpandsItsPlaceholders() {
    RenderedPrompt r =
        engine.renderer().renderWithImages(chat("Compare ", SQUARE, " and ", WIDE, "."), true);
    String text = model.tokenizer().decode(r.ids(), false);
    String expected =
        ChatTemplate.BEGIN_OF_SENTENCE
            + "User: Compare Picture 1:<|IMAGE_START|>"
            + placeholders(4)
            + "<|IMAGE_END|> and Picture 2:<|IMAGE_START|>"
            + placeholders(6)
            + "<|IMAGE_END|>.\nAssistant: ";
    assertEquals(expected, text);
    assertEquals(2, r.images().size());
    ImageSpan wide = r.images().get(1);
    assertEquals(2, wide.gridH(), "56 pixels high: 2 merged rows");
    assertEquals(3, wide.gridW(), "84 pixels wide: 3 merged columns");
    assertEquals(ids.start(), r.ids()[wide.start() - 1]);
    assertEquals(ids.end(), r.ids()[wide.end()]);
  }

  @Test
  void slotsInTextAndTokenPromptsTakeTheImagesInOrder() {
    RenderedPrompt tokens =
        engine
            .renderer()
            .renderWithImages(
                new Prompt.Tokens(new int[] {40, ids.start(), ids.end(), 41}, List.of(WIDE)), true);
    int[] expected = new int[4 + 6];
    expected[0] = 40;
    expected[1] = ids.start();
    Arrays.fill(expected, 2, 8, ids.placeholder());
    expected[8] = ids.end();
    expected[9] = 41;
    assertArrayEquals(expected, tokens.ids());
    assertEquals(2, tokens.images().get(0).start());

    RenderedPrompt text =
        engine
            .renderer()
            .renderWithImages(
                new Prompt.Text("see " + ChatTemplate.IMAGE_SLOT, List.of(SQUARE)), true);
    assertEquals(4 + 2 + 4, text.ids().length, "4 bytes, start, 4 placeholders, end");
  }

  @Test
  void slotsAndImagesThatDoNotPairUpAreRefused() {
    InvalidRequestException twoSlots =
        assertThrows(
            InvalidRequestException.class,
            () ->
                engine
                    .renderer()
                    .render(
                        new Prompt.Tokens(
                            new int[] {ids.start(), ids.end(), 40, ids.start(), ids.end()},
                            List.of(SQUARE)),
                        true));
    assertEquals("prompt_token_ids", twoSlots.field());
    assertTrue(
        twoSlots.getMessage().startsWith("the prompt has 2 image slots")
            && twoSlots.getMessage().contains("but 1 image was given"),
        twoSlots.getMessage());
    InvalidRequestException noImage =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.renderer().render(new Prompt.Text("a " + ChatTemplate.IMAGE_SLOT), true));
    assertEquals("prompt", noImage.field());
    assertTrue(noImage.getMessage().contains("but 0 images were given"), noImage.getMessage());
  }

  @Test
  void aBrokenImageIsRefusedNamingWhereItIs() {
    EncodedImage broken = new EncodedImage("not an image".getBytes());
    InvalidRequestException e =
        assertThrows(
            InvalidRequestException.class,
            () -> engine.renderer().render(chat("look: ", broken), true));
    assertEquals("messages", e.field());
    assertTrue(
        e.getMessage().startsWith("messages[0].content[1]: not a PNG or JPEG image"),
        e.getMessage());
  }

  @Test
  void aModelWithoutVisionRefusesImagesAndTextRendersAsWithout() {
    PromptRenderer textOnly = new PromptRenderer(model.tokenizer(), ChatTemplate.ernie());
    InvalidRequestException e =
        assertThrows(InvalidRequestException.class, () -> textOnly.render(chat("x", SQUARE), true));
    assertTrue(e.getMessage().contains("this model takes no images"), e.getMessage());
    Prompt text = Prompt.user("Héllo <b>, what is 2+2?");
    assertArrayEquals(textOnly.render(text, false), engine.renderer().render(text, false));
    assertArrayEquals(
        textOnly.render(Prompt.tokens(5, 9, 7, 100), false),
        engine.renderer().render(Prompt.tokens(5, 9, 7, 100), false),
        "lone image tokens are no slot");
  }

  static GenerateResult greedy(Prompt p) {
    SamplingParams s =
        SamplingParams.builder().temperature(0).maxTokens(8).ignoreEos(true).logprobs(1).build();
    return engine.generate(new GenerateRequest("vision-test", p, s, true));
  }

  @Test
  void generationWithImagesIsDeterministicAndSeesTheImage() {
    GenerateResult one = greedy(chat("What is this? ", SQUARE));
    GenerateResult again = greedy(chat("What is this? ", SQUARE));
    assertArrayEquals(one.tokenIds(), again.tokenIds(), "same image, same tokens");
    assertArrayEquals(one.logprobs(), again.logprobs(), "same image, same logprobs");
    assertEquals(8, one.completionTokens());

    GenerateResult other = greedy(chat("What is this? ", OTHER));
    assertFalse(
        Arrays.equals(one.tokenIds(), other.tokenIds())
            && Arrays.equals(one.logprobs(), other.logprobs()),
        "another image with the same text must change the output");

    GenerateResult two = greedy(chat("Compare ", SQUARE, " with ", WIDE));
    GenerateResult twoAgain = greedy(chat("Compare ", SQUARE, " with ", WIDE));
    assertArrayEquals(two.tokenIds(), twoAgain.tokenIds(), "two images, same tokens");
    assertArrayEquals(two.logprobs(), twoAgain.logprobs());
    GenerateResult swapped = greedy(chat("Compare ", WIDE, " with ", SQUARE));
    assertFalse(Arrays.equals(two.logprobs(), swapped.logprobs()), "the images' order is seen");
  }

  /** Records each MoE call's per-row expert group, then lets the local experts compute it. */
  static final class RecordingExperts implements ExpertBackend {
    final List<int[]> groups = new ArrayList<>();

    @Override
    public float[] routed(RoutedBatch batch) {
      groups.add(batch.group().clone());
      return engine.experts().routed(batch);
    }
  }

  @Test
  void exactlyThePromptsImageTokensUseTheVisionExperts() {
    ModelConfig cfg = model.config();
    RenderedPrompt r =
        engine.renderer().renderWithImages(chat("Compare ", SQUARE, " and ", WIDE), true);
    PrefillInputs in =
        PrefillInputs.of(r, cfg, engine.runner(), engine.visionEncoder().orElseThrow());
    int[] prompt = r.ids();
    RecordingExperts rec = new RecordingExperts();
    ContiguousKv kv = new ContiguousKv(cfg, prompt.length + 1);
    float[] logits = engine.runner().forward(List.of(in.step(kv, true)), rec)[0];

    long moeLayers = cfg.layerKinds().stream().filter(k -> k == LayerKind.MOE).count();
    assertEquals(moeLayers, rec.groups.size(), "one routed call per MoE layer");
    int imageTokens = 0;
    for (int id : prompt) {
      imageTokens += ids.isVisionToken(id) ? 1 : 0;
    }
    assertEquals(4 + 6 + 2 * 2, imageTokens, "placeholders plus a start and an end per image");
    for (int[] groups : rec.groups) {
      for (int i = 0; i < prompt.length; i++) {
        int expected = ids.isVisionToken(prompt[i]) ? ExpertGroup.VISION : ExpertGroup.TEXT;
        assertEquals(
            expected, groups[i], "expert group of prompt token " + i + " (" + prompt[i] + ")");
      }
    }

    rec.groups.clear();
    int next = 0;
    for (int v = 1; v < logits.length; v++) {
      next = logits[v] > logits[next] ? v : next;
    }
    engine.runner().forward(List.of(in.decode(next, kv)), rec);
    for (int[] groups : rec.groups) {
      assertArrayEquals(new int[] {ExpertGroup.TEXT}, groups, "generated tokens use text experts");
    }
  }
}
