package dev.pdserve.loadgen;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import java.util.Optional;
import javax.net.ssl.SSLContext;

/**
 * How a benchmark's connections are secured ({@code bench --tls-ca / --tls / --tls-cert}): the
 * credentials of its gRPC channels (the router's public API and admin API) and, for {@code
 * https://} base URLs, the TLS context of its HTTP client (empty: the JDK's default CAs). {@link
 * #PLAINTEXT} is no TLS on gRPC and the JDK's defaults for an {@code https://} URL.
 */
public record ClientTls(ChannelCredentials grpc, Optional<SSLContext> https) {
  public static final ClientTls PLAINTEXT =
      new ClientTls(InsecureChannelCredentials.create(), Optional.empty());

  public ClientTls {
    if (grpc == null || https == null) {
      throw new IllegalArgumentException("grpc credentials and https context must not be null");
    }
  }
}
