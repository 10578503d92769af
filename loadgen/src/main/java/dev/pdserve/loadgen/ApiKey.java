package dev.pdserve.loadgen;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.net.http.HttpRequest;
import java.util.Optional;

/**
 * The API key a benchmark presents ({@code --api-key} / {@code PDSERVE_API_KEY}): {@code
 * Authorization: Bearer KEY} on HTTP requests and as gRPC metadata. {@link #NONE} sends nothing.
 * {@link #toString()} never shows the key.
 */
public final class ApiKey {
  public static final ApiKey NONE = new ApiKey(null);

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final String key;

  private ApiKey(String key) {
    this.key = key;
  }

  /** {@code key}, or {@link #NONE} when it is null or blank. */
  public static ApiKey of(String key) {
    return key == null || key.isBlank() ? NONE : new ApiKey(key.strip());
  }

  public boolean present() {
    return key != null;
  }

  /** The header value, {@code Bearer KEY}, if there is a key. */
  public Optional<String> headerValue() {
    return key == null ? Optional.empty() : Optional.of("Bearer " + key);
  }

  /** Adds the header to {@code b} if there is a key. */
  public HttpRequest.Builder apply(HttpRequest.Builder b) {
    headerValue().ifPresent(v -> b.header("Authorization", v));
    return b;
  }

  /** A client interceptor sending the metadata on every call (none when there is no key). */
  public ClientInterceptor interceptor() {
    return new ClientInterceptor() {
      @Override
      public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
          MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(
            next.newCall(method, options)) {
          @Override
          public void start(Listener<RespT> listener, Metadata headers) {
            headerValue().ifPresent(v -> headers.put(AUTHORIZATION, v));
            super.start(listener, headers);
          }
        };
      }
    };
  }

  @Override
  public String toString() {
    return key == null ? "no API key" : "an API key";
  }
}
