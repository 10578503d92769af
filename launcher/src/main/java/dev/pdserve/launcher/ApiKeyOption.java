package dev.pdserve.launcher;

import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.loadgen.ApiKey;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import picocli.CommandLine.Help.Visibility;
import picocli.CommandLine.Option;

/**
 * {@code --api-key KEY} of the clients ({@code generate --router}, {@code bench}, {@code admin}),
 * defaulting to the {@code PDSERVE_API_KEY} environment variable: sent as {@code Authorization:
 * Bearer KEY} to a router whose nodes have {@code pdserve.auth.api-keys-file}.
 */
final class ApiKeyOption {
  static final String ENV = "PDSERVE_API_KEY";

  @Option(
      names = "--api-key",
      paramLabel = "KEY",
      defaultValue = "${env:" + ENV + ":-}",
      showDefaultValue = Visibility.NEVER,
      description =
          "API key for a router with pdserve.auth.api-keys-file, sent as `Authorization: Bearer"
              + " KEY`. Default: the "
              + ENV
              + " environment variable (preferred: a flag shows in the process list).")
  String key;

  ApiKey apiKey() {
    return ApiKey.of(key);
  }

  /** A plaintext channel to {@code target} presenting the key (if any) on every call. */
  static ManagedChannel channel(String target, ApiKey key) {
    return channel(target, TransportSecurity.plaintext(), key);
  }

  /**
   * A channel to {@code target} over {@code security} presenting the key (if any) on every call.
   */
  static ManagedChannel channel(String target, TransportSecurity security, ApiKey key) {
    return NettyChannelBuilder.forTarget(target, security.channelCredentials())
        .intercept(key.interceptor())
        .build();
  }
}
