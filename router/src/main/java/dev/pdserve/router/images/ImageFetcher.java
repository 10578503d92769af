package dev.pdserve.router.images;

import dev.pdserve.core.config.ImageIntakeSettings;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

/**
 * Fetches an image URL for the router, as a client that can be pointed anywhere must: only hosts on
 * the allow-list; each host resolved first and refused when any of its addresses is not public
 * (loopback, private, link-local, carrier-grade NAT, multicast, documentation ranges, IPv6 unique
 * local...), then connected to that checked address (no second lookup a DNS answer could change);
 * redirects followed up to the limit with the same checks at every hop; the body counted as it
 * arrives and dropped as soon as it passes the byte limit (a Content-Length over it is refused
 * before reading any); the whole fetch bounded by the timeout. HTTP/1.1 GET with {@code Connection:
 * close}, TLS with the JDK's trust store and host name verification. Thread-safe.
 */
public final class ImageFetcher {
  /** Resolves a host name to its addresses. */
  public interface Resolver {
    InetAddress[] resolve(String host) throws UnknownHostException;
  }

  /** A fetched body and its declared {@code Content-Type} ("" when none). */
  public record Fetched(byte[] body, String mediaType, String finalUrl) {}

  private static final int MAX_HEADER_BYTES = 64 << 10;

  private final ImageIntakeSettings settings;
  private final Resolver resolver;
  private final Predicate<InetAddress> addressAllowed;
  private final LongSupplier nanos;

  /**
   * @param addressAllowed which resolved addresses may be connected to ({@link #isPublic} outside
   *     tests)
   */
  public ImageFetcher(
      ImageIntakeSettings settings,
      Resolver resolver,
      Predicate<InetAddress> addressAllowed,
      LongSupplier nanos) {
    this.settings = settings;
    this.resolver = resolver;
    this.addressAllowed = addressAllowed;
    this.nanos = nanos;
  }

  /** A fetcher over the system resolver that connects to public addresses only. */
  public static ImageFetcher publicOnly(ImageIntakeSettings settings) {
    return new ImageFetcher(
        settings, InetAddress::getAllByName, ImageFetcher::isPublic, System::nanoTime);
  }

  /**
   * The body at {@code url}.
   *
   * @throws ImageRefusedException naming {@code where}: a URL not allowed, a host with a non-public
   *     address, too many redirects, an HTTP error, a timeout, a body over the limit (too large)
   */
  public Fetched fetch(String url, String where) {
    long deadline = nanos.getAsLong() + settings.fetchTimeout().toNanos();
    URI uri = parse(url, where);
    for (int hop = 0; ; hop++) {
      Response r = get(uri, where, deadline);
      if (r.status >= 300 && r.status < 400 && r.location != null) {
        if (hop >= settings.maxRedirects()) {
          throw refused(
              where,
              "fetching the image URL took more than "
                  + settings.maxRedirects()
                  + " redirects (pdserve.router.images.max-redirects)");
        }
        try {
          uri = uri.resolve(new URI(r.location.trim()));
        } catch (URISyntaxException | IllegalArgumentException e) {
          throw refused(where, "the image URL redirected to an invalid URL: " + r.location);
        }
        uri = checkUri(uri, where);
        continue;
      }
      if (r.status != 200) {
        throw refused(where, "the image URL " + show(uri) + " answered HTTP " + r.status);
      }
      return new Fetched(r.body, r.contentType, uri.toString());
    }
  }

  private URI parse(String url, String where) {
    try {
      return checkUri(new URI(url.trim()), where);
    } catch (URISyntaxException e) {
      throw refused(where, "invalid image URL: " + e.getMessage());
    }
  }

  private URI checkUri(URI uri, String where) {
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!scheme.equals("http") && !scheme.equals("https")) {
      throw refused(where, "image URLs must be http or https, got '" + scheme + "'");
    }
    if (uri.getHost() == null || uri.getRawUserInfo() != null) {
      throw refused(where, "image URL " + show(uri) + " needs a host and no user info");
    }
    String host = hostOf(uri);
    if (!settings.hostAllowed(host)) {
      throw refused(
          where,
          "host '"
              + host
              + "' of the image URL is not in pdserve.router.images.allowed-hosts "
              + settings.allowedHosts());
    }
    return uri;
  }

  private static String hostOf(URI uri) {
    String h = uri.getHost().toLowerCase(Locale.ROOT);
    return h.startsWith("[") && h.endsWith("]") ? h.substring(1, h.length() - 1) : h;
  }

  /** The checked address the host resolves to: every one of its addresses must be allowed. */
  private InetAddress resolve(String host, String where) {
    InetAddress[] all;
    try {
      all = resolver.resolve(host);
    } catch (UnknownHostException e) {
      throw refused(where, "the host '" + host + "' of the image URL does not resolve");
    }
    if (all == null || all.length == 0) {
      throw refused(where, "the host '" + host + "' of the image URL does not resolve");
    }
    for (InetAddress a : all) {
      if (!addressAllowed.test(a)) {
        throw refused(
            where,
            "the host '"
                + host
                + "' of the image URL resolves to "
                + a.getHostAddress()
                + ", not a public address; the router fetches from public addresses only");
      }
    }
    return all[0];
  }

  private record Response(int status, String location, String contentType, byte[] body) {}

  private Response get(URI uri, String where, long deadline) {
    String host = hostOf(uri);
    boolean tls = uri.getScheme().equalsIgnoreCase("https");
    int port = uri.getPort() >= 0 ? uri.getPort() : tls ? 443 : 80;
    InetAddress address = resolve(host, where);
    Socket socket = new Socket();
    try (Socket closing = socket) {
      socket.connect(new InetSocketAddress(address, port), remainingMillis(deadline, where));
      Socket s = socket;
      if (tls) {
        SSLSocket ssl =
            (SSLSocket)
                ((SSLSocketFactory) SSLSocketFactory.getDefault())
                    .createSocket(socket, host, port, true);
        SSLParameters p = ssl.getSSLParameters();
        p.setEndpointIdentificationAlgorithm("HTTPS");
        if (!(address.getHostAddress().equals(host) || host.contains(":"))) {
          p.setServerNames(java.util.List.of(new SNIHostName(host)));
        }
        ssl.setSSLParameters(p);
        ssl.setSoTimeout(remainingMillis(deadline, where));
        ssl.startHandshake();
        s = ssl;
      }
      s.setSoTimeout(remainingMillis(deadline, where));
      String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
      if (uri.getRawQuery() != null) {
        path += "?" + uri.getRawQuery();
      }
      boolean defaultPort = uri.getPort() < 0;
      String hostHeader =
          (host.contains(":") ? "[" + host + "]" : host) + (defaultPort ? "" : ":" + port);
      OutputStream out = s.getOutputStream();
      out.write(
          ("GET "
                  + path
                  + " HTTP/1.1\r\nHost: "
                  + hostHeader
                  + "\r\nUser-Agent: pdserve-router\r\nAccept: image/png, image/jpeg, */*;q=0.5"
                  + "\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      return read(new DeadlineInput(s, s.getInputStream(), deadline, where), uri, where);
    } catch (ImageRefusedException e) {
      throw e;
    } catch (SocketTimeoutException e) {
      throw timedOut(where);
    } catch (IOException e) {
      throw refused(where, "fetching the image URL " + show(uri) + " failed: " + e);
    }
  }

  private Response read(DeadlineInput in, URI uri, String where) throws IOException {
    String status = in.line();
    String[] parts = status.split(" ", 3);
    if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
      throw refused(where, "the image URL " + show(uri) + " did not answer HTTP/1.x: " + status);
    }
    int code;
    try {
      code = Integer.parseInt(parts[1]);
    } catch (NumberFormatException e) {
      throw refused(where, "the image URL " + show(uri) + " sent a bad status line: " + status);
    }
    long length = -1;
    boolean chunked = false;
    String location = null;
    String type = "";
    while (true) {
      String h = in.line();
      if (h.isEmpty()) {
        break;
      }
      int colon = h.indexOf(':');
      if (colon <= 0) {
        continue;
      }
      String name = h.substring(0, colon).trim().toLowerCase(Locale.ROOT);
      String value = h.substring(colon + 1).trim();
      switch (name) {
        case "content-length" -> {
          try {
            length = Long.parseLong(value);
          } catch (NumberFormatException e) {
            throw refused(where, "the image URL sent a bad Content-Length: " + value);
          }
        }
        case "transfer-encoding" -> chunked = value.toLowerCase(Locale.ROOT).contains("chunked");
        case "location" -> location = value;
        case "content-type" -> type = value;
        default -> {}
      }
    }
    if (code != 200) {
      return new Response(code, location, type, new byte[0]); // the body is not read
    }
    long max = settings.maxBytes();
    if (!chunked && length > max) {
      throw tooLarge(where, "the image URL's body is " + length + " bytes");
    }
    LimitedBody body = new LimitedBody(max, where);
    if (chunked) {
      while (true) {
        String sizeLine = in.line();
        int semi = sizeLine.indexOf(';');
        long size;
        try {
          size = Long.parseLong((semi < 0 ? sizeLine : sizeLine.substring(0, semi)).trim(), 16);
        } catch (NumberFormatException e) {
          throw refused(where, "the image URL sent a bad chunk size: " + sizeLine);
        }
        if (size == 0) {
          break;
        }
        body.copy(in, size);
        in.line(); // the CRLF after the chunk
      }
    } else if (length >= 0) {
      body.copy(in, length);
    } else {
      body.copy(in, Long.MAX_VALUE); // to the end of the connection
    }
    return new Response(code, null, type, body.bytes());
  }

  /** The body, refused as soon as it passes {@code max} bytes. */
  private final class LimitedBody {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final long max;
    private final String where;

    LimitedBody(long max, String where) {
      this.max = max;
      this.where = where;
    }

    void copy(DeadlineInput in, long n) throws IOException {
      byte[] buf = new byte[16 << 10];
      long left = n;
      while (left > 0) {
        int r = in.read(buf, (int) Math.min(buf.length, left));
        if (r < 0) {
          if (n == Long.MAX_VALUE) {
            return;
          }
          throw refused(where, "the image URL's body ended early (truncated)");
        }
        if (out.size() + (long) r > max) {
          throw tooLarge(where, "the image URL's body is more than " + max + " bytes");
        }
        out.write(buf, 0, r);
        left -= r;
      }
    }

    byte[] bytes() {
      return out.toByteArray();
    }
  }

  /** Reads from the socket, each read bounded by what is left of the fetch's time. */
  private final class DeadlineInput {
    private final Socket socket;
    private final InputStream in;
    private final long deadline;
    private final String where;
    private int headerBytes;

    DeadlineInput(Socket socket, InputStream in, long deadline, String where) {
      this.socket = socket;
      this.in = in;
      this.deadline = deadline;
      this.where = where;
    }

    int read(byte[] buf, int len) throws IOException {
      socket.setSoTimeout(remainingMillis(deadline, where));
      return in.read(buf, 0, len);
    }

    /** A CRLF-terminated line (headers and chunk sizes), bounded. */
    String line() throws IOException {
      StringBuilder sb = new StringBuilder();
      while (true) {
        socket.setSoTimeout(remainingMillis(deadline, where));
        int c = in.read();
        if (c < 0) {
          throw refused(where, "the image URL's answer ended early");
        }
        if (++headerBytes > MAX_HEADER_BYTES) {
          throw refused(where, "the image URL's headers are over " + MAX_HEADER_BYTES + " bytes");
        }
        if (c == '\n') {
          int n = sb.length();
          return n > 0 && sb.charAt(n - 1) == '\r' ? sb.substring(0, n - 1) : sb.toString();
        }
        sb.append((char) c);
      }
    }
  }

  private int remainingMillis(long deadline, String where) {
    long left = deadline - nanos.getAsLong();
    if (left <= 0) {
      throw timedOut(where);
    }
    return (int) Math.max(1, Math.min(Integer.MAX_VALUE, left / 1_000_000));
  }

  private ImageRefusedException timedOut(String where) {
    return refused(
        where,
        "fetching the image URL took longer than "
            + settings.fetchTimeout().toMillis()
            + " ms (pdserve.router.images.fetch-timeout)");
  }

  private static ImageRefusedException refused(String where, String reason) {
    return new ImageRefusedException(where, reason, false);
  }

  private ImageRefusedException tooLarge(String where, String what) {
    return new ImageRefusedException(
        where,
        what
            + ", more than the limit of "
            + settings.maxBytes()
            + " bytes"
            + " (pdserve.router.images.max-bytes)",
        true);
  }

  private static String show(URI uri) {
    String s = uri.toString();
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  /**
   * Whether {@code a} is a public unicast address: not the wildcard, loopback, link-local,
   * site-local/private (10/8, 172.16/12, 192.168/16), carrier-grade NAT (100.64/10), "this network"
   * (0/8), benchmarking (198.18/15), documentation, reserved (240/4), broadcast, multicast, IPv6
   * unique local (fc00::/7), documentation (2001:db8::/32), NAT64 (64:ff9b::/96) or
   * IPv4-compatible/mapped forms of those.
   */
  public static boolean isPublic(InetAddress a) {
    if (a.isAnyLocalAddress()
        || a.isLoopbackAddress()
        || a.isLinkLocalAddress()
        || a.isSiteLocalAddress()
        || a.isMulticastAddress()) {
      return false;
    }
    byte[] b = a.getAddress();
    if (a instanceof Inet4Address) {
      return isPublicV4(b);
    }
    if (a instanceof Inet6Address) {
      int b0 = b[0] & 0xff;
      int b1 = b[1] & 0xff;
      if ((b0 & 0xfe) == 0xfc) {
        return false; // unique local
      }
      if (b0 == 0x20 && b1 == 0x01 && (b[2] & 0xff) == 0x0d && (b[3] & 0xff) == 0xb8) {
        return false; // documentation
      }
      boolean zeros80 = true;
      for (int i = 0; i < 10; i++) {
        zeros80 &= b[i] == 0;
      }
      boolean mapped = zeros80 && (b[10] & 0xff) == 0xff && (b[11] & 0xff) == 0xff;
      boolean compatible = zeros80 && b[10] == 0 && b[11] == 0;
      boolean nat64 = b0 == 0x00 && b1 == 0x64 && (b[2] & 0xff) == 0xff && (b[3] & 0xff) == 0x9b;
      for (int i = 4; nat64 && i < 12; i++) {
        nat64 = b[i] == 0;
      }
      if (mapped || compatible || nat64) {
        return isPublicV4(new byte[] {b[12], b[13], b[14], b[15]});
      }
      return true;
    }
    return false;
  }

  private static boolean isPublicV4(byte[] b) {
    int o0 = b[0] & 0xff;
    int o1 = b[1] & 0xff;
    int o2 = b[2] & 0xff;
    if (o0 == 0 || o0 == 10 || o0 == 127 || o0 >= 224) {
      return false; // this network, private, loopback, multicast, reserved, broadcast
    }
    if (o0 == 100 && (o1 & 0xc0) == 64) {
      return false; // carrier-grade NAT
    }
    if (o0 == 169 && o1 == 254) {
      return false; // link-local (cloud metadata)
    }
    if (o0 == 172 && (o1 & 0xf0) == 16) {
      return false;
    }
    if (o0 == 192 && o1 == 168) {
      return false;
    }
    if (o0 == 192 && o1 == 0 && (o2 == 0 || o2 == 2)) {
      return false; // IETF protocol assignments, documentation
    }
    if (o0 == 198 && (o1 == 18 || o1 == 19)) {
      return false; // benchmarking
    }
    if ((o0 == 198 && o1 == 51 && o2 == 100) || (o0 == 203 && o1 == 0 && o2 == 113)) {
      return false; // documentation
    }
    return true;
  }
}
