package dev.pdserve.router.images;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.ImageIntakeSettings;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;

class ImageIntakeTest {
  private static final byte[] PNG = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};

  private static ImageIntake intake(long maxBytes, int maxImages) {
    return ImageIntake.of(
        new ImageIntakeSettings(
            maxImages, maxBytes, 1 << 20, false, List.of(), Duration.ofSeconds(5), 3));
  }

  private static String dataUrl(String type, byte[] bytes) {
    return "data:" + type + ";base64," + Base64.getEncoder().encodeToString(bytes);
  }

  @Test
  void dataUrlsDecodeWithTheirDeclaredType() {
    ImageIntake in = intake(1 << 20, 4);
    assertArrayEquals(PNG, in.url(dataUrl("image/png", PNG), "p").bytes());
    assertArrayEquals(PNG, in.url(dataUrl("image/jpeg", PNG), "p").bytes(), "the bytes decide");
    assertArrayEquals(
        PNG,
        in.url("DATA:image/PNG;base64," + Base64.getMimeEncoder().encodeToString(PNG), "p")
            .bytes());
    assertArrayEquals(PNG, in.inline(PNG, "", "p").bytes());
  }

  @Test
  void eachRefusalNamesThePart() {
    ImageIntake in = intake(1 << 20, 2);
    String part = "messages[0].content[1]";
    for (String url :
        List.of(
            "data:image/png;base64,@@@not-base64@@@",
            "data:image/png,rawbytes",
            "data:image/webp;base64," + Base64.getEncoder().encodeToString(PNG),
            "data:image/png;base64",
            "data:image/png;base64,",
            "ftp://example.com/cat.png",
            "https://example.com/cat.png",
            "")) {
      ImageRefusedException e = assertThrows(ImageRefusedException.class, () -> in.url(url, part));
      assertTrue(e.getMessage().startsWith(part + ": "), e.getMessage());
      assertEquals(part, e.part());
      assertFalse(e.tooLarge(), url);
    }
    ImageRefusedException fetch =
        assertThrows(ImageRefusedException.class, () -> in.url("https://example.com/a.png", part));
    assertTrue(
        fetch.getMessage().contains("pdserve.router.images.fetch-enabled"), fetch.getMessage());
    ImageRefusedException gif =
        assertThrows(ImageRefusedException.class, () -> in.inline(PNG, "image/gif", "images[0]"));
    assertTrue(gif.getMessage().contains("unsupported image type 'image/gif'"), gif.getMessage());
    assertThrows(ImageRefusedException.class, () -> in.inline(new byte[0], "", "images[0]"));
  }

  @Test
  void overTheByteLimitIsTooLargeAndOverTheCountIsNot() {
    ImageIntake in = intake(100, 2);
    byte[] big = new byte[101];
    ImageRefusedException inline =
        assertThrows(ImageRefusedException.class, () -> in.inline(big, "image/png", "images[0]"));
    assertTrue(inline.tooLarge());
    assertTrue(
        inline.getMessage().contains("101 bytes, more than the limit of 100"), inline.getMessage());
    ImageRefusedException data =
        assertThrows(
            ImageRefusedException.class, () -> in.url(dataUrl("image/png", new byte[4000]), "p"));
    assertTrue(data.tooLarge(), data.getMessage());
    in.checkCount(2, "messages");
    ImageRefusedException count =
        assertThrows(ImageRefusedException.class, () -> in.checkCount(3, "messages"));
    assertFalse(count.tooLarge());
    assertTrue(count.getMessage().contains("3 images in one prompt, more than the limit of 2"));
  }

  @Test
  void aLimitOfZeroSaysTheDeploymentIsTextOnly() {
    ImageIntake in = intake(100, 0);
    in.checkCount(0, "messages");
    ImageRefusedException e =
        assertThrows(ImageRefusedException.class, () -> in.checkCount(1, "messages"));
    assertFalse(e.tooLarge());
    assertTrue(e.getMessage().contains("serves text only"), e.getMessage());
    assertTrue(e.getMessage().contains("pdserve.vision.enabled"), e.getMessage());
  }

  @Test
  void hostPatterns() {
    ImageIntakeSettings s =
        ImageIntakeSettings.DEFAULTS.withFetching(
            ImageIntakeSettings.parseHosts(" img.example.com, *.cdn.example.org ,"));
    assertTrue(s.hostAllowed("img.example.com"));
    assertTrue(s.hostAllowed("IMG.example.com"));
    assertTrue(s.hostAllowed("a.cdn.example.org"));
    assertFalse(s.hostAllowed("cdn.example.org"));
    assertFalse(s.hostAllowed("evilcdn.example.org"));
    assertFalse(s.hostAllowed("example.com"));
    assertFalse(ImageIntakeSettings.DEFAULTS.hostAllowed("img.example.com"));
    assertTrue(ImageIntakeSettings.DEFAULTS.withFetching(List.of("*")).hostAllowed("x.y"));
  }
}
