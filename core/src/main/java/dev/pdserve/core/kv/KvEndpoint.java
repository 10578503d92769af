package dev.pdserve.core.kv;

/**
 * Where a node receives KV pushes: the host and port of its KV transfer endpoint, as it published
 * them. How the bytes travel there (the Flight scheme, TLS) is the {@link KvPusher}'s business.
 */
public record KvEndpoint(String host, int port) {
  public KvEndpoint {
    if (host == null || host.isEmpty()) {
      throw new IllegalArgumentException("KV endpoint host must not be empty");
    }
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException("KV endpoint port must be in 1..65535, got " + port);
    }
  }

  @Override
  public String toString() {
    return host + ":" + port;
  }
}
