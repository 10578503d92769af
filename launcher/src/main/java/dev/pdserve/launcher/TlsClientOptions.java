package dev.pdserve.launcher;

import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.loadgen.ClientTls;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Optional;
import picocli.CommandLine.Option;

/**
 * How a CLI client reaches a router whose public API has TLS on: {@code --tls-ca} (the CA that
 * signed the router's certificate; {@code pdserve local --tls} prints it), optionally a client
 * certificate. Without any of them, plaintext.
 */
final class TlsClientOptions {
  @Option(
      names = "--tls-ca",
      paramLabel = "FILE",
      description =
          "Connect over TLS, trusting the CA certificate in FILE (PEM), and check the router's host name.")
  Path ca;

  @Option(
      names = "--tls",
      description = "Connect over TLS trusting the JDK's default CAs (a publicly signed router).")
  boolean tls;

  @Option(
      names = "--tls-cert",
      paramLabel = "FILE",
      description = "Client certificate (PEM) to present, with --tls-key.")
  Path cert;

  @Option(names = "--tls-key", paramLabel = "FILE", description = "Key of --tls-cert (PEM).")
  Path key;

  /** The credentials these options describe. */
  TransportSecurity security() {
    if (!given()) {
      return TransportSecurity.plaintext();
    }
    try {
      return TransportSecurity.client(
          Optional.ofNullable(ca), Optional.ofNullable(cert), Optional.ofNullable(key));
    } catch (IOException | IllegalArgumentException e) {
      throw new UserFacingException("TLS settings: " + e.getMessage(), CliErrors.USAGE);
    }
  }

  /** These credentials for the benchmark's gRPC channels and HTTPS client. */
  ClientTls clientTls() {
    TransportSecurity s = security();
    if (!s.enabled()) {
      return ClientTls.PLAINTEXT;
    }
    return new ClientTls(s.channelCredentials(), s.clientSslContext());
  }

  /** Whether any TLS option was given. */
  boolean given() {
    return ca != null || tls || cert != null || key != null;
  }

  /** A channel to {@code address} with these credentials. */
  ManagedChannel channel(String address) {
    return NettyChannelBuilder.forTarget(address, security().channelCredentials()).build();
  }
}
