package dev.pdserve.core.config;

import java.net.InetSocketAddress;

/**
 * A {@code host:port} pair. IPv6 literals are written in brackets ({@code [::1]:5701}).
 *
 * @param host a host name or IP literal (without brackets)
 * @param port 0..65535
 */
public record HostPort(String host, int port) {
  public HostPort {
    if (host == null || host.isBlank()) {
      throw new IllegalArgumentException("host must not be empty");
    }
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("port must be 0..65535, got " + port);
    }
  }

  /**
   * Parses {@code host:port}; the port is required and must be a single number (port ranges such as
   * {@code 5701-5703} are refused: list members one by one).
   */
  public static HostPort parse(String text) {
    String s = text.trim();
    String host;
    String port;
    if (s.startsWith("[")) {
      int close = s.indexOf(']');
      if (close < 0 || close + 1 >= s.length() || s.charAt(close + 1) != ':') {
        throw new IllegalArgumentException("expected [ipv6]:port, got '" + text + "'");
      }
      host = s.substring(1, close);
      port = s.substring(close + 2);
    } else {
      int colon = s.lastIndexOf(':');
      if (colon <= 0 || s.indexOf(':') != colon) {
        throw new IllegalArgumentException("expected host:port, got '" + text + "'");
      }
      host = s.substring(0, colon);
      port = s.substring(colon + 1);
    }
    if (port.contains("-")) {
      throw new IllegalArgumentException(
          "port ranges are not supported, list members one by one, got '" + text + "'");
    }
    int p;
    try {
      p = Integer.parseInt(port);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("port must be a number, got '" + text + "'");
    }
    if (p < 1 || p > 65535) {
      throw new IllegalArgumentException("port must be 1..65535, got '" + text + "'");
    }
    return new HostPort(host, p);
  }

  public InetSocketAddress toSocketAddress() {
    return new InetSocketAddress(host, port);
  }

  @Override
  public String toString() {
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }
}
