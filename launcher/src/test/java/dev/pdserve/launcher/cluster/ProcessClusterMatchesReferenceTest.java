package dev.pdserve.launcher.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.api.v1.Completion;
import dev.pdserve.api.v1.GenerateRequest;
import dev.pdserve.api.v1.GenerateResponse;
import dev.pdserve.api.v1.GenerationGrpc;
import dev.pdserve.api.v1.SamplingParams;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.launcher.node.LocalChild;
import dev.pdserve.launcher.node.LocalCluster;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.engine.ReferenceEngine;
import dev.pdserve.model.onnx.OrtRuntime;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * DESIGN.md invariant 1 across real OS processes: {@code pdserve local} starts every node as its
 * own JVM on loopback; greedy outputs through its router equal the reference engine's.
 */
class ProcessClusterMatchesReferenceTest {
  static ReferenceEngine reference;
  static LoadedModel model;

  @BeforeAll
  static void loadReference() {
    model = LoadedModel.load(ModelSpec.preset("tiny"));
    reference = new ReferenceEngine(model, OrtRuntime.shared());
  }

  @AfterAll
  static void close() {
    reference.close();
    model.close();
  }

  @ParameterizedTest(name = "{0}P/{1}D/{2}E as processes")
  @CsvSource({"1,1,0", "1,1,2", "2,2,4"})
  void processClusterMatchesReference(int prefill, int decode, int experts) throws Exception {
    LocalCluster.Spec spec =
        new LocalCluster.Spec(
            prefill,
            decode,
            experts,
            "tiny",
            null,
            ModelSpec.DEFAULT_SEED,
            "16m",
            "WARN",
            Map.of(),
            "384m");
    try (LocalCluster cluster =
        LocalCluster.start(spec, line -> System.err.println(line), Duration.ofSeconds(180))) {
      ManagedChannel ch =
          NettyChannelBuilder.forTarget(cluster.routerAddress()).usePlaintext().build();
      try {
        List<NodeStatus> nodes =
            AdminServiceGrpc.newBlockingStub(ch)
                .listNodes(ListNodesRequest.getDefaultInstance())
                .getNodesList();
        assertEquals(
            prefill + decode + experts + 1,
            nodes.stream().filter(n -> n.getState().equals("ACTIVE")).count(),
            nodes.toString());
        for (GenerateRequest r : ClusterMatchesReferenceTest.prompts()) {
          Iterator<GenerateResponse> it =
              GenerationGrpc.newBlockingStub(ch)
                  .withDeadlineAfter(60, TimeUnit.SECONDS)
                  .generate(r);
          List<Integer> ids = new ArrayList<>();
          Completion completion = null;
          while (it.hasNext()) {
            GenerateResponse g = it.next();
            if (g.hasDelta()) {
              ids.addAll(g.getDelta().getTokenIdsList());
            } else {
              completion = g.getCompletion();
            }
          }
          assertNotNull(completion, r.getRequestId());
          assertArrayEquals(
              ClusterMatchesReferenceTest.expected(reference, r),
              ids.stream().mapToInt(Integer::intValue).toArray(),
              r.getRequestId()
                  + " differs from the reference on "
                  + prefill
                  + "P/"
                  + decode
                  + "D/"
                  + experts
                  + "E");
        }
        // bad input answered with a status; the processes stay up
        StatusRuntimeException e =
            Assertions.assertThrows(
                StatusRuntimeException.class,
                () -> {
                  Iterator<GenerateResponse> it =
                      GenerationGrpc.newBlockingStub(ch)
                          .withDeadlineAfter(30, TimeUnit.SECONDS)
                          .generate(
                              ClusterMatchesReferenceTest.req(
                                      "bad", SamplingParams.newBuilder().setTopP(2).build())
                                  .setPrompt("x")
                                  .build());
                  while (it.hasNext()) {
                    it.next();
                  }
                });
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        for (LocalChild c : cluster.children()) {
          assertTrue(c.process().isAlive(), c.id() + " should still run");
        }
        // no KV held anywhere once requests are done (workers report free blocks to the registry)
        InJvmCluster.await(
            Duration.ofSeconds(10),
            () -> {
              List<NodeStatus> now =
                  AdminServiceGrpc.newBlockingStub(ch)
                      .listNodes(ListNodesRequest.getDefaultInstance())
                      .getNodesList();
              return now.stream()
                  .filter(n -> n.getRole().equals("prefill") || n.getRole().equals("decode"))
                  .allMatch(
                      n -> n.getKvTotalBlocks() > 0 && n.getKvFreeBlocks() == n.getKvTotalBlocks());
            },
            "every worker's KV pool to be full again");
      } finally {
        ch.shutdownNow();
      }
    }
  }
}
