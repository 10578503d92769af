package dev.pdserve.core.auth;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * API keys and the cluster token on gRPC: the {@code authorization} metadata ({@code Bearer KEY})
 * checked by a server interceptor before any handler runs (refused: {@code UNAUTHENTICATED} with a
 * message a person can act on), and the client interceptor that sends it.
 *
 * <p>Which credential a service needs is decided here by its name ({@link #routeOf}), so a service
 * added later is node-internal (cluster token only) unless it is listed as public.
 */
public final class GrpcAuth {
  public static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of(AccessControl.AUTHORIZATION, Metadata.ASCII_STRING_MARSHALLER);

  /** Services callers outside the cluster use: an API key opens them. */
  public static final Set<String> PUBLIC_SERVICES =
      Set.of(
          "pdserve.v1.Generation",
          "pdserve.internal.v1.AdminService",
          "pdserve.internal.v1.NodeService",
          "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection");

  public static final String HEALTH_SERVICE = "grpc.health.v1.Health";

  private GrpcAuth() {}

  /** The route a service is: public, health, or (any other) node-internal. */
  public static Route routeOf(String serviceName) {
    if (HEALTH_SERVICE.equals(serviceName)) {
      return Route.HEALTH;
    }
    return PUBLIC_SERVICES.contains(serviceName) ? Route.PUBLIC : Route.CLUSTER;
  }

  /** Refuses every call its credential does not open, before the call's handler sees it. */
  public static ServerInterceptor serverInterceptor(AccessControl access) {
    return new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        Route route = routeOf(call.getMethodDescriptor().getServiceName());
        AccessControl.Decision d = access.check(route, headers.get(AUTHORIZATION));
        if (!d.allowed()) {
          call.close(Status.UNAUTHENTICATED.withDescription(d.message()), new Metadata());
          return new ServerCall.Listener<>() {};
        }
        return next.startCall(call, headers);
      }
    };
  }

  /**
   * What a node's clients attach to reach other nodes: the cluster token (re-read as its file
   * changes), or nothing when there is none.
   */
  public static List<ClientInterceptor> clusterCredentials(AccessControl access) {
    if (access.clusterToken().isEmpty()) {
      return List.of();
    }
    return List.of(bearer(() -> access.clusterToken().orElse("")));
  }

  /** Sends {@code Bearer <credential>} on every call. */
  public static ClientInterceptor bearer(String credential) {
    return bearer(() -> credential);
  }

  /** Sends {@code Bearer <credential>} on every call, the credential read when the call starts. */
  public static ClientInterceptor bearer(Supplier<String> credential) {
    return new ClientInterceptor() {
      @Override
      public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
          MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(
            next.newCall(method, options)) {
          @Override
          public void start(Listener<RespT> listener, Metadata headers) {
            headers.put(AUTHORIZATION, AccessControl.bearerValue(credential.get()));
            super.start(listener, headers);
          }
        };
      }
    };
  }
}
