package dev.pdserve.core.tls;

import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.security.cert.Certificate;
import java.util.Optional;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/** The certificate a gRPC call's peer presented on its TLS connection, and a check that it did. */
public final class PeerCertificates {
  private static final ServerInterceptor NONE =
      new ServerInterceptor() {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
          return next.startCall(call, headers);
        }
      };

  private static final ServerInterceptor REQUIRED =
      new ServerInterceptor() {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
          if (peerCertificate(call).isEmpty()) {
            call.close(
                Status.UNAUTHENTICATED.withDescription(
                    "a cluster certificate is required on this endpoint (mutual TLS)"),
                new Metadata());
            return new ServerCall.Listener<>() {};
          }
          return next.startCall(call, headers);
        }
      };

  private PeerCertificates() {}

  /** The peer's verified leaf certificate, if its connection is TLS and it presented one. */
  public static Optional<Certificate> peerCertificate(ServerCall<?, ?> call) {
    SSLSession session = call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION);
    if (session == null) {
      return Optional.empty();
    }
    try {
      Certificate[] chain = session.getPeerCertificates();
      return chain.length == 0 ? Optional.empty() : Optional.of(chain[0]);
    } catch (SSLPeerUnverifiedException e) {
      return Optional.empty();
    }
  }

  static ServerInterceptor required(boolean required) {
    return required ? REQUIRED : NONE;
  }
}
