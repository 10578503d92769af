package dev.pdserve.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.vision.EncodedImage;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class ChatTemplateTest {
  private final ChatTemplate template = ChatTemplate.ernie();

  @Test
  void rendersNonThinkingPromptWithAnEmptyThought() {
    String prompt =
        template.render(
            List.of(ChatMessage.system("You are terse."), ChatMessage.user("Hi")), true, false);
    assertEquals(
        "<|begin_of_sentence|>You are terse.\nUser: Hi\nAssistant: <think>\n\n</think>\n\n",
        prompt);
  }

  @Test
  void rendersThinkingPromptEndingAtTheAssistantTag() {
    String prompt = template.render(List.of(ChatMessage.user("Hi")), true, true);
    assertEquals("<|begin_of_sentence|>User: Hi\nAssistant: ", prompt);
  }

  @Test
  void rendersAMultiTurnConversation() {
    String prompt =
        template.render(
            List.of(
                ChatMessage.user("Hi"), ChatMessage.assistant("Hello!"), ChatMessage.user("Bye")),
            true,
            true);
    assertEquals(
        "<|begin_of_sentence|>User: Hi\nAssistant: Hello!<|end_of_sentence|>User: Bye\nAssistant: ",
        prompt);
  }

  @Test
  void withoutGenerationPromptEndsAfterTheLastMessage() {
    String prompt =
        template.render(List.of(ChatMessage.user("Hi"), ChatMessage.assistant("Yo")), false, false);
    assertEquals("<|begin_of_sentence|>User: Hi\nAssistant: Yo<|end_of_sentence|>", prompt);
  }

  @Test
  void renderedSpecialTokensEncodeToTheirIds() {
    String prompt = template.render(List.of(ChatMessage.user("é")), true, false);
    int[] ids = ByteTokenizer.create().encode(prompt);
    assertEquals(3, ids[0], "begin_of_sentence first: " + Arrays.toString(ids));
    assertEquals(
        1,
        Arrays.stream(ids).filter(id -> id == 5).count(),
        "one <think> in " + Arrays.toString(ids));
    assertEquals(
        1,
        Arrays.stream(ids).filter(id -> id == 6).count(),
        "one </think> in " + Arrays.toString(ids));
  }

  @Test
  void rejectsInvalidConversationsNamingTheMessage() {
    assertMessage(
        "messages[2].role must be one of system, user, assistant; got 'tool'",
        List.of(ChatMessage.user("a"), ChatMessage.assistant("b"), new ChatMessage("tool", "c")));
    assertMessage(
        "messages[0].role must be one of system, user, assistant; got null",
        List.of(new ChatMessage(null, "a")));
    assertMessage(
        "messages[1].role is 'system', but a system message is only allowed as the first message",
        List.of(ChatMessage.user("a"), ChatMessage.system("b")));
    assertMessage("messages[0].content must not be null", List.of(ChatMessage.user(null)));
    assertMessage("messages must contain at least one message", List.of());
    assertMessage("messages[1] must not be null", Arrays.asList(ChatMessage.user("a"), null));
  }

  @Test
  void imagesBecomePictureNSlotsNumberedAcrossTheConversation() {
    EncodedImage img = new EncodedImage(new byte[] {1, 2, 3});
    String out =
        template.render(
            List.of(
                new ChatMessage(
                    ChatMessage.SYSTEM,
                    List.of(ContentPart.text("Look: "), ContentPart.image(img))),
                ChatMessage.userParts(
                    ContentPart.image(img), ContentPart.text(" vs "), ContentPart.image(img))),
            true,
            true);
    assertEquals(
        "<|begin_of_sentence|>Look: Picture 1:<|IMAGE_START|><|IMAGE_END|>\n"
            + "User: Picture 2:<|IMAGE_START|><|IMAGE_END|> vs Picture 3:<|IMAGE_START|>"
            + "<|IMAGE_END|>\nAssistant: ",
        out);
    assertMessage(
        "messages[1].content[0] is an image, but only system and user messages may hold images",
        List.of(
            ChatMessage.user("a"),
            new ChatMessage(ChatMessage.ASSISTANT, List.of(ContentPart.image(img)))));
    assertMessage(
        "messages[0].content[1] must not be null",
        List.of(ChatMessage.userParts(ContentPart.text("a"), ContentPart.image(null))));
  }

  private void assertMessage(String expected, List<ChatMessage> messages) {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> template.render(messages, true, false));
    assertEquals(expected, e.getMessage());
  }
}
