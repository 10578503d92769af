package dev.pdserve.core.grpc;

import dev.pdserve.core.logging.LogContext;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import org.apache.logging.log4j.CloseableThreadContext;
import org.apache.logging.log4j.ThreadContext;

/**
 * Carries a request's id from node to node in the gRPC header {@value #HEADER_NAME}, so every
 * node's log lines about the request carry it ({@link LogContext#REQUEST_ID} in Log4j2's
 * ThreadContext).
 *
 * <p>The {@linkplain #clientInterceptor() client side} reads the id from the calling thread's
 * context when a call is made (the router, prefill and decode engines put it there around the work
 * of a request) and sends it; the {@linkplain #serverInterceptor() server side} puts the received
 * id into the context of every callback of the call, so the handler and whatever it logs carry it.
 * Ids are URL-encoded on the wire (header values must be printable ASCII; clients may choose any
 * id) and decoded on receipt.
 */
public final class RequestIds {
  /** The gRPC metadata header holding the request id. */
  public static final String HEADER_NAME = "x-request-id";

  public static final Metadata.Key<String> HEADER =
      Metadata.Key.of(HEADER_NAME, Metadata.ASCII_STRING_MARSHALLER);

  private static final ClientInterceptor CLIENT = new Client();
  private static final ServerInterceptor SERVER = new Server();

  private RequestIds() {}

  /** Adds the calling thread's request id (if any) to every outgoing call. */
  public static ClientInterceptor clientInterceptor() {
    return CLIENT;
  }

  /** Puts an incoming call's request id (if it has one) into the log context of its callbacks. */
  public static ServerInterceptor serverInterceptor() {
    return SERVER;
  }

  /** {@code id} as it travels in the header. */
  static String encode(String id) {
    return URLEncoder.encode(id, StandardCharsets.UTF_8);
  }

  /** The id a header value carries; the value itself if it is not valid URL encoding. */
  static String decode(String value) {
    try {
      return URLDecoder.decode(value, StandardCharsets.UTF_8);
    } catch (IllegalArgumentException e) {
      return value;
    }
  }

  private static final class Client implements ClientInterceptor {
    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      String id = ThreadContext.get(LogContext.REQUEST_ID);
      ClientCall<Q, R> call = next.newCall(method, options);
      if (id == null || id.isEmpty()) {
        return call;
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          headers.put(HEADER, encode(id));
          super.start(listener, headers);
        }
      };
    }
  }

  private static final class Server implements ServerInterceptor {
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
        ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
      String value = headers.get(HEADER);
      if (value == null || value.isEmpty()) {
        return next.startCall(call, headers);
      }
      String id = decode(value);
      ServerCall.Listener<Q> listener;
      try (CloseableThreadContext.Instance ctx =
          CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
        listener = next.startCall(call, headers);
      }
      return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
        @Override
        public void onMessage(Q message) {
          try (CloseableThreadContext.Instance ctx =
              CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
            super.onMessage(message);
          }
        }

        @Override
        public void onHalfClose() {
          try (CloseableThreadContext.Instance ctx =
              CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
            super.onHalfClose();
          }
        }

        @Override
        public void onCancel() {
          try (CloseableThreadContext.Instance ctx =
              CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
            super.onCancel();
          }
        }

        @Override
        public void onComplete() {
          try (CloseableThreadContext.Instance ctx =
              CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
            super.onComplete();
          }
        }

        @Override
        public void onReady() {
          try (CloseableThreadContext.Instance ctx =
              CloseableThreadContext.put(LogContext.REQUEST_ID, id)) {
            super.onReady();
          }
        }
      };
    }
  }
}
