package dev.pdserve.model.onnx;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import org.junit.jupiter.api.Test;

/** Asking for an execution provider the build lacks is an error that says how to get it. */
class ExecutionProviderTest {
  @Test
  void cudaOnABuildWithoutItIsRefusedWithTheWayToGetIt() {
    assertDoesNotThrow(
        () -> OrtRuntime.requireProviders(new OrtRuntime.RuntimeOptions(1, false, true)));
    OrtRuntime.RuntimeOptions cuda = new OrtRuntime.RuntimeOptions(1, true, true);
    if (OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA)) {
      assertDoesNotThrow(() -> OrtRuntime.requireProviders(cuda), "the GPU build has CUDA");
      return;
    }
    IllegalStateException e =
        assertThrows(IllegalStateException.class, () -> OrtRuntime.requireProviders(cuda));
    assertTrue(
        e.getMessage().contains("pdserve.ort.execution-provider=cuda")
            && e.getMessage().contains("mvn -Pgpu")
            && e.getMessage().contains("CPU"),
        e.getMessage());
  }
}
