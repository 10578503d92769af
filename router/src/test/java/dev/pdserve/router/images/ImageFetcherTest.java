package dev.pdserve.router.images;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.pdserve.core.config.ImageIntakeSettings;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link ImageFetcher} against a real HTTP server on loopback. The server is reached through test
 * host names ({@code good.test} → 127.0.0.1) and an address rule that lets exactly 127.0.0.1
 * through, so the checks a public deployment makes are exercised on a private one: a host resolving
 * to another address ({@code evil.test} → 127.0.0.2, standing for a private or metadata address) is
 * refused at the first hop or after a redirect, before anything connects to it.
 */
class ImageFetcherTest {
  private static final byte[] BODY = "pretend-png-bytes".getBytes();

  private HttpServer server;
  private int port;
  private final AtomicInteger hits = new AtomicInteger();
  private final AtomicLong streamedBytes = new AtomicLong();

  @BeforeEach
  void start() throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.createContext(
        "/img.png",
        ex -> {
          hits.incrementAndGet();
          ex.getResponseHeaders().add("Content-Type", "image/png");
          ex.sendResponseHeaders(200, BODY.length);
          ex.getResponseBody().write(BODY);
          ex.close();
        });
    server.createContext(
        "/to-evil",
        ex -> {
          hits.incrementAndGet();
          ex.getResponseHeaders().add("Location", "http://evil.test:" + port + "/img.png");
          ex.sendResponseHeaders(302, -1);
          ex.close();
        });
    server.createContext(
        "/loop",
        ex -> {
          hits.incrementAndGet();
          ex.getResponseHeaders().add("Location", "/loop");
          ex.sendResponseHeaders(301, -1);
          ex.close();
        });
    server.createContext(
        "/hop",
        ex -> {
          hits.incrementAndGet();
          ex.getResponseHeaders().add("Location", "/img.png");
          ex.sendResponseHeaders(307, -1);
          ex.close();
        });
    server.createContext(
        "/endless",
        ex -> {
          hits.incrementAndGet();
          ex.sendResponseHeaders(200, 0); // chunked, no length
          byte[] chunk = new byte[64 << 10];
          try (OutputStream out = ex.getResponseBody()) {
            for (int i = 0; i < 1024; i++) { // 64 MiB if nobody stops reading
              out.write(chunk);
              streamedBytes.addAndGet(chunk.length);
            }
          } catch (IOException e) {
            // the client hung up: what it should do past the limit
          }
          ex.close();
        });
    server.createContext(
        "/big",
        ex -> {
          hits.incrementAndGet();
          ex.sendResponseHeaders(200, 10L << 20);
          try (OutputStream out = ex.getResponseBody()) {
            out.write(new byte[1024]);
          } catch (IOException e) {
            // refused from the header
          }
          ex.close();
        });
    server.createContext(
        "/missing",
        ex -> {
          hits.incrementAndGet();
          ex.sendResponseHeaders(404, -1);
          ex.close();
        });
    server.start();
    port = server.getAddress().getPort();
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  private static final Map<String, String> HOSTS =
      Map.of("good.test", "127.0.0.1", "evil.test", "127.0.0.2", "other.test", "127.0.0.1");

  private static InetAddress[] resolve(String host) throws UnknownHostException {
    String ip = HOSTS.get(host);
    if (ip == null) {
      throw new UnknownHostException(host);
    }
    return new InetAddress[] {InetAddress.getByName(ip)};
  }

  private ImageFetcher fetcher(ImageIntakeSettings s) {
    return new ImageFetcher(
        s,
        ImageFetcherTest::resolve,
        a -> a.getHostAddress().equals("127.0.0.1"),
        System::nanoTime);
  }

  private static ImageIntakeSettings settings(long maxBytes, int redirects, String... hosts) {
    return new ImageIntakeSettings(
        8, maxBytes, 1 << 20, true, List.of(hosts), Duration.ofSeconds(30), redirects);
  }

  private String url(String host, String path) {
    return "http://" + host + ":" + port + path;
  }

  @Test
  void fetchesAnAllowedHostAndFollowsARelativeRedirect() {
    ImageFetcher f = fetcher(settings(1 << 20, 3, "good.test"));
    ImageFetcher.Fetched got = f.fetch(url("good.test", "/img.png"), "images[0]");
    assertArrayEquals(BODY, got.body());
    assertEquals("image/png", got.mediaType());
    ImageFetcher.Fetched hopped = f.fetch(url("good.test", "/hop"), "images[0]");
    assertArrayEquals(BODY, hopped.body());
    assertTrue(hopped.finalUrl().endsWith("/img.png"), hopped.finalUrl());
  }

  @Test
  void aHostOffTheAllowListIsRefusedBeforeAnyConnection() {
    ImageFetcher f = fetcher(settings(1 << 20, 3, "good.test"));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class,
            () -> f.fetch(url("other.test", "/img.png"), "messages[0].content[1]"));
    assertTrue(
        e.getMessage().startsWith("messages[0].content[1]: host 'other.test'"), e.getMessage());
    assertTrue(e.getMessage().contains("pdserve.router.images.allowed-hosts"), e.getMessage());
    assertEquals(0, hits.get());
  }

  @Test
  void aHostResolvingToAForbiddenAddressIsRefusedAtTheFirstHopAndAfterARedirect() {
    ImageFetcher f = fetcher(settings(1 << 20, 3, "*.test"));
    ImageRefusedException first =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("evil.test", "/img.png"), "images[0]"));
    assertTrue(first.getMessage().contains("127.0.0.2, not a public address"), first.getMessage());
    assertEquals(0, hits.get(), "nothing connected to the forbidden address");
    ImageRefusedException redirected =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/to-evil"), "images[0]"));
    assertTrue(
        redirected.getMessage().contains("'evil.test' of the image URL resolves to 127.0.0.2"),
        redirected.getMessage());
    assertEquals(1, hits.get(), "only the redirecting hop was fetched");
  }

  @Test
  void thePublicOnlyFetcherRefusesLoopbackEvenWhenAllowListed() {
    ImageFetcher f = ImageFetcher.publicOnly(settings(1 << 20, 3, "*"));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("127.0.0.1", "/img.png"), "images[0]"));
    assertTrue(e.getMessage().contains("not a public address"), e.getMessage());
    assertEquals(0, hits.get());
  }

  @Test
  void redirectsAreBounded() {
    ImageFetcher f = fetcher(settings(1 << 20, 2, "good.test"));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/loop"), "images[0]"));
    assertTrue(e.getMessage().contains("more than 2 redirects"), e.getMessage());
    assertEquals(3, hits.get(), "the first request and two redirects, no more");
    ImageFetcher none = fetcher(settings(1 << 20, 0, "good.test"));
    assertThrows(ImageRefusedException.class, () -> none.fetch(url("good.test", "/hop"), "x"));
  }

  @Test
  void aBodyOverTheLimitIsDroppedWhileItStreamsNotAfter() {
    long limit = 256 << 10;
    ImageFetcher f = fetcher(settings(limit, 3, "good.test"));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/endless"), "images[1]"));
    assertTrue(e.tooLarge(), e.getMessage());
    assertTrue(e.getMessage().contains("more than " + limit + " bytes"), e.getMessage());
    server.stop(1); // lets the handler finish so its count is final
    assertTrue(
        streamedBytes.get() < 32L << 20,
        "the router stopped reading long before the 64 MiB body ended: "
            + streamedBytes.get()
            + " bytes written");
  }

  @Test
  void aContentLengthOverTheLimitIsRefusedFromTheHeader() {
    ImageFetcher f = fetcher(settings(1 << 20, 3, "good.test"));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/big"), "images[0]"));
    assertTrue(e.tooLarge());
    assertTrue(e.getMessage().contains("body is " + (10L << 20) + " bytes"), e.getMessage());
  }

  @Test
  void anHttpErrorAndAnUnknownHostAreRefusedByName() {
    ImageFetcher f = fetcher(settings(1 << 20, 3, "*"));
    ImageRefusedException e404 =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/missing"), "images[0]"));
    assertTrue(e404.getMessage().contains("answered HTTP 404"), e404.getMessage());
    assertFalse(e404.tooLarge());
    ImageRefusedException unknown =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("nowhere.test", "/"), "images[0]"));
    assertTrue(unknown.getMessage().contains("does not resolve"), unknown.getMessage());
    assertThrows(ImageRefusedException.class, () -> f.fetch("ftp://good.test/x.png", "images[0]"));
    assertThrows(
        ImageRefusedException.class,
        () -> f.fetch("http://user:pw@good.test:" + port + "/img.png", "images[0]"));
  }

  @Test
  void theWholeFetchIsBoundedByTheTimeoutOnTheInjectedClock() {
    AtomicLong now = new AtomicLong();
    // every reading of the clock moves it one second on: the 3 s budget runs out mid-fetch
    ImageFetcher f =
        new ImageFetcher(
            new ImageIntakeSettings(
                8, 1 << 20, 1 << 20, true, List.of("good.test"), Duration.ofSeconds(3), 3),
            ImageFetcherTest::resolve,
            a -> true,
            () -> now.addAndGet(1_000_000_000L));
    ImageRefusedException e =
        assertThrows(
            ImageRefusedException.class, () -> f.fetch(url("good.test", "/img.png"), "images[0]"));
    assertTrue(e.getMessage().contains("longer than 3000 ms"), e.getMessage());
  }

  @Test
  void onlyPublicUnicastAddressesArePublic() throws Exception {
    for (String ip :
        List.of(
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1")) {
      assertFalse(ImageFetcher.isPublic(InetAddress.getByName(ip)), ip);
    }
    for (String ip :
        List.of("8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700::1111", "64:ff9b::808:808")) {
      assertTrue(ImageFetcher.isPublic(InetAddress.getByName(ip)), ip);
    }
  }
}
