package dev.pdserve.router.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.base.Ticker;
import com.google.protobuf.ByteString;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.core.auth.AccessControl;
import dev.pdserve.core.auth.GrpcAuth;
import dev.pdserve.core.config.AuthSettings;
import dev.pdserve.core.grpc.Channels;
import dev.pdserve.core.grpc.GrpcServer;
import dev.pdserve.router.EmptyClusterRouter;
import dev.pdserve.router.Router;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * gRPC server reflection on the router's public server shows the image fields of the public API
 * (issue 12): the server is built as {@code RouterNode} builds it — {@link GrpcServer} (which adds
 * grpc.health and reflection v1 + v1alpha to every server), the {@link GrpcAuth} interceptor, the
 * {@link GenerationGrpcService} over a real {@link Router} — on a real Netty port 0, with API keys
 * on. A reflection client lists the services and fetches the file holding {@code
 * pdserve.v1.GenerateRequest}; the descriptors rebuilt from the answer carry {@code Image.data}
 * (bytes), {@code Image.url} and {@code Image.media_type}, {@code ContentPart.image} and {@code
 * GenerateRequest.images}.
 *
 * <p>Reflection is a public route ({@code GrpcAuth.PUBLIC_SERVICES}): with API keys configured it
 * needs a key (or the cluster token), as Generate does; without a credential it is UNAUTHENTICATED.
 */
class ReflectionImageFieldsTest {
  private static final String KEY = "reflection-test-key";
  private static final String TOKEN = "reflection-test-cluster-token";

  @TempDir Path dir;

  private Router router;
  private GrpcServer server;
  private Channels channels;
  private ManagedChannel channel;

  @BeforeEach
  void start() throws Exception {
    Path keys = Files.writeString(dir.resolve("api-keys"), "# keys\n" + KEY + "\n");
    Path token = Files.writeString(dir.resolve("cluster-token"), TOKEN + "\n");
    AccessControl access =
        AccessControl.of(
            new AuthSettings(Optional.of(keys), Optional.of(token), false, true),
            Ticker.systemTicker());
    router = EmptyClusterRouter.create();
    server =
        GrpcServer.forAddress("127.0.0.1", 0)
            .name("router")
            .intercept(GrpcAuth.serverInterceptor(access))
            .addService(new GenerationGrpcService(router, EmptyClusterRouter.MODEL.name()))
            .build()
            .start();
    channels = new Channels(Channels.Settings.defaults());
    channel = channels.get("127.0.0.1:" + server.port());
  }

  @AfterEach
  void stop() {
    channels.close();
    server.close(Duration.ZERO);
    router.close();
  }

  @Test
  void reflectionListsThePublicServicesWithAKey() throws Exception {
    ServerReflectionResponse r =
        ask(
            GrpcAuth.bearer(KEY),
            ServerReflectionRequest.newBuilder().setListServices("*").build());
    List<String> services =
        r.getListServicesResponse().getServiceList().stream()
            .map(ServiceResponse::getName)
            .toList();
    assertTrue(services.contains("pdserve.v1.Generation"), services.toString());
    assertTrue(services.contains("grpc.reflection.v1.ServerReflection"), services.toString());
    assertTrue(services.contains("grpc.health.v1.Health"), services.toString());
  }

  @Test
  void theFileOfGenerateRequestShowsTheImageFields() throws Exception {
    ServerReflectionResponse r =
        ask(
            GrpcAuth.bearer(KEY),
            ServerReflectionRequest.newBuilder()
                .setFileContainingSymbol("pdserve.v1.GenerateRequest")
                .build());
    assertFalse(r.hasErrorResponse(), r.getErrorResponse().toString());
    List<ByteString> files = r.getFileDescriptorResponse().getFileDescriptorProtoList();
    assertFalse(files.isEmpty(), "no file descriptor in the answer");
    FileDescriptor file = build(files, "pdserve/v1/generation.proto");

    Descriptor image = file.findMessageTypeByName("Image");
    assertNotNull(image, "pdserve.v1.Image in " + file.getName());
    FieldDescriptor data = image.findFieldByName("data");
    assertNotNull(data, "Image.data");
    assertEquals(FieldDescriptor.Type.BYTES, data.getType());
    assertEquals(1, data.getNumber());
    FieldDescriptor url = image.findFieldByName("url");
    assertNotNull(url, "Image.url");
    assertEquals(FieldDescriptor.Type.STRING, url.getType());
    assertEquals(2, url.getNumber());
    assertEquals("source", data.getContainingOneof().getName(), "data is one image source");
    assertEquals(data.getContainingOneof(), url.getContainingOneof(), "url is the other");
    FieldDescriptor mediaType = image.findFieldByName("media_type");
    assertNotNull(mediaType, "Image.media_type");
    assertEquals(FieldDescriptor.Type.STRING, mediaType.getType());
    assertEquals(3, mediaType.getNumber());

    Descriptor part = file.findMessageTypeByName("ContentPart");
    assertNotNull(part, "pdserve.v1.ContentPart");
    FieldDescriptor partImage = part.findFieldByName("image");
    assertNotNull(partImage, "ContentPart.image");
    assertEquals("pdserve.v1.Image", partImage.getMessageType().getFullName());
    assertEquals("part", partImage.getContainingOneof().getName());

    Descriptor request = file.findMessageTypeByName("GenerateRequest");
    assertNotNull(request, "pdserve.v1.GenerateRequest");
    FieldDescriptor images = request.findFieldByName("images");
    assertNotNull(images, "GenerateRequest.images");
    assertTrue(images.isRepeated(), "images is repeated");
    assertEquals("pdserve.v1.Image", images.getMessageType().getFullName());

    // What reflection serves is the descriptor the server was compiled with, nothing less.
    assertEquals(GenerateRequest.getDescriptor().getFile().toProto(), file.toProto());
  }

  @Test
  void reflectionNeedsAKeyWhenKeysAreConfigured() throws Exception {
    ServerReflectionRequest list =
        ServerReflectionRequest.newBuilder().setListServices("*").build();
    assertEquals(Status.Code.UNAUTHENTICATED, refusal(null, list).getCode(), "no credential");
    Status wrong = refusal(GrpcAuth.bearer("not-a-key"), list);
    assertEquals(Status.Code.UNAUTHENTICATED, wrong.getCode(), "a wrong key");
    assertFalse(wrong.getDescription().contains("not-a-key"), "the refusal repeats the key");
    // the legacy v1alpha service (older grpcurl) is guarded the same way
    assertEquals(Status.Code.UNAUTHENTICATED, legacyRefusal(), "v1alpha without a credential");
    // the cluster token opens every route, reflection included
    assertTrue(
        ask(GrpcAuth.bearer(TOKEN), list).getListServicesResponse().getServiceCount() > 0,
        "cluster token");
  }

  /** Rebuilds {@code name} from the reflected protos (its dependencies are in the answer too). */
  private static FileDescriptor build(List<ByteString> raw, String name) throws Exception {
    Map<String, FileDescriptorProto> protos = new HashMap<>();
    for (ByteString b : raw) {
      FileDescriptorProto p = FileDescriptorProto.parseFrom(b);
      protos.put(p.getName(), p);
    }
    assertTrue(protos.containsKey(name), "reflected files: " + protos.keySet());
    return build(protos, name, new HashMap<>());
  }

  private static FileDescriptor build(
      Map<String, FileDescriptorProto> protos, String name, Map<String, FileDescriptor> built)
      throws Exception {
    FileDescriptor done = built.get(name);
    if (done != null) {
      return done;
    }
    FileDescriptorProto p = protos.get(name);
    assertNotNull(p, "dependency " + name + " missing from the reflection answer");
    List<FileDescriptor> deps = new ArrayList<>();
    for (String dep : p.getDependencyList()) {
      deps.add(build(protos, dep, built));
    }
    FileDescriptor f = FileDescriptor.buildFrom(p, deps.toArray(new FileDescriptor[0]));
    built.put(name, f);
    return f;
  }

  /** One reflection request on a v1 stream sending {@code credential} (null: none). */
  private ServerReflectionResponse ask(ClientInterceptor credential, ServerReflectionRequest req)
      throws Exception {
    CompletableFuture<ServerReflectionResponse> answer = new CompletableFuture<>();
    ServerReflectionGrpc.ServerReflectionStub stub = ServerReflectionGrpc.newStub(channel);
    if (credential != null) {
      stub = stub.withInterceptors(credential);
    }
    StreamObserver<ServerReflectionRequest> requests =
        stub.withDeadlineAfter(30, TimeUnit.SECONDS)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ServerReflectionResponse r) {
                    answer.complete(r);
                  }

                  @Override
                  public void onError(Throwable t) {
                    answer.completeExceptionally(t);
                  }

                  @Override
                  public void onCompleted() {
                    answer.completeExceptionally(new AssertionError("no answer"));
                  }
                });
    requests.onNext(req);
    try {
      return answer.get(30, TimeUnit.SECONDS);
    } finally {
      requests.onCompleted();
    }
  }

  /** The status a v1 reflection call ends with when it is refused. */
  private Status refusal(ClientInterceptor credential, ServerReflectionRequest req)
      throws Exception {
    try {
      ServerReflectionResponse r = ask(credential, req);
      throw new AssertionError("reflection answered: " + r);
    } catch (ExecutionException e) {
      return Status.fromThrowable(e.getCause());
    }
  }

  @SuppressWarnings("deprecation")
  private Status.Code legacyRefusal() throws Exception {
    CompletableFuture<Status> end = new CompletableFuture<>();
    StreamObserver<io.grpc.reflection.v1alpha.ServerReflectionRequest> requests =
        io.grpc.reflection.v1alpha.ServerReflectionGrpc.newStub(channel)
            .withDeadlineAfter(30, TimeUnit.SECONDS)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(io.grpc.reflection.v1alpha.ServerReflectionResponse r) {
                    end.complete(Status.OK);
                  }

                  @Override
                  public void onError(Throwable t) {
                    end.complete(Status.fromThrowable(t));
                  }

                  @Override
                  public void onCompleted() {
                    end.complete(Status.OK);
                  }
                });
    requests.onNext(
        io.grpc.reflection.v1alpha.ServerReflectionRequest.newBuilder()
            .setListServices("*")
            .build());
    try {
      return end.get(30, TimeUnit.SECONDS).getCode();
    } finally {
      requests.onCompleted();
    }
  }
}
