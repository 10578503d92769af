package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import dev.pdserve.model.engine.LoadedModel;
import dev.pdserve.model.engine.ModelSpec;
import dev.pdserve.model.memory.MemoryPlan.InsufficientMemoryException;
import dev.pdserve.model.weights.CheckpointConverter;
import dev.pdserve.model.weights.ConvertOptions;
import dev.pdserve.model.weights.DummyWeights;
import dev.pdserve.model.weights.SafetensorsDType;
import dev.pdserve.model.weights.TestCheckpoints;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The name a node serves its model under, and the memory check before it loads its weights. */
class NodeMemoryAndNameTest {
  static NodeConfig config(String role, Map<String, String> more) {
    Map<String, String> m = new HashMap<>();
    m.put("role", role);
    m.put("node.id", "n1");
    m.putAll(more);
    return NodeConfigLoader.fromMap(m);
  }

  @Test
  void aModelDirectoryIsServedUnderItsDirectorysNameAPresetUnderItsOwn(@TempDir Path tmp) {
    ModelConfig tiny = ModelPresets.get("tiny");
    Path ckpt =
        TestCheckpoints.write(
            tmp.resolve("released"),
            tiny,
            new DummyWeights(tiny, ModelSpec.DEFAULT_SEED),
            TestCheckpoints.Layout.released(tiny, SafetensorsDType.F32));
    Path dir = tmp.resolve("ernie-tiny-local");
    CheckpointConverter.convert(ckpt, dir, ConvertOptions.defaults());
    try (LoadedModel fromDir = LoadedModel.load(ModelSpec.directory(dir.resolve(".")));
        LoadedModel preset = LoadedModel.load(ModelSpec.preset("tiny"))) {
      assertEquals("ernie-tiny-local", NodeModels.servedName(config("prefill", Map.of()), fromDir));
      assertEquals("tiny", NodeModels.servedName(config("prefill", Map.of()), preset));
      NodeConfig named = config("router", Map.of("model.served-name", "baidu/ERNIE-4.5-VL"));
      assertEquals("baidu/ERNIE-4.5-VL", NodeModels.servedName(named, fromDir));
      assertEquals("baidu/ERNIE-4.5-VL", NodeModels.servedName(named, preset));
    }
  }

  @Test
  void aBadServedNameIsRefusedNamingTheKey() {
    var e =
        assertThrows(
            RuntimeException.class,
            () -> config("router", Map.of("model.served-name", "has space")));
    assertTrue(e.getMessage().contains("pdserve.model.served-name"), e.getMessage());
  }

  @Test
  void aWorkerOrShardThatCannotFitItsShareIsRefusedSayingWhatItNeedsAndHas() {
    ModelConfig tiny = ModelPresets.get("tiny");
    NodeConfig small =
        config("decode", Map.of("node.memory-limit", "64m", "kv.budget-bytes", "8m"));
    InsufficientMemoryException worker =
        assertThrows(
            InsufficientMemoryException.class, () -> NodeMemory.requireWorkerFits(small, tiny));
    assertTrue(
        worker.getMessage().startsWith("not enough memory for worker, experts local: needs "),
        worker.getMessage());
    assertTrue(
        worker.getMessage().contains("but has 64.0 MiB (pdserve.node.memory-limit)"),
        worker.getMessage());
    NodeConfig shard = config("expert", Map.of("node.memory-limit", "100m"));
    InsufficientMemoryException e =
        assertThrows(
            InsufficientMemoryException.class,
            () -> NodeMemory.requireShardFits(shard, tiny, new ExpertRange(0, 31)));
    assertTrue(e.getMessage().contains("expert shard (32 of 64 experts)"), e.getMessage());
    // enough memory: no refusal
    NodeMemory.requireWorkerFits(
        config("prefill", Map.of("node.memory-limit", "2g", "kv.budget-bytes", "8m")), tiny);
    NodeMemory.requireShardFits(
        config("expert", Map.of("node.memory-limit", "2g")), tiny, new ExpertRange(0, 63));
  }

  @Test
  void the28bInFp32DoesNotFitA24GibMachineButItsDecodeWorkerDoes() {
    ModelConfig big = ModelPresets.get("ernie-4.5-vl-28b-a3b");
    Map<String, String> local = Map.of("node.memory-limit", "24g");
    assertThrows(
        InsufficientMemoryException.class,
        () -> NodeMemory.requireWorkerFits(config("decode", local), big));
    NodeMemory.requireWorkerFits(
        config("decode", Map.of("node.memory-limit", "24g", "experts.mode", "remote")), big);
  }

  @Test
  void aTextOnlyWorkerDoesNotCountTheVisionTower() {
    ModelConfig big = ModelPresets.get("ernie-4.5-vl-28b-a3b");
    Map<String, String> remote = Map.of("experts.mode", "remote", "model.quantization", "int4");
    Map<String, String> textOnly = new HashMap<>(remote);
    textOnly.put("vision.enabled", "false");
    long withVision =
        NodeMemory.plan(config("decode", remote), big).worker(false, false).weightBytes();
    long without =
        NodeMemory.plan(config("decode", textOnly), big).worker(false, false).weightBytes();
    long tower = big.vision().orElseThrow().parameters(big.hidden()) * 4; // fp32
    assertEquals(tower, withVision - without);
  }

  @Test
  void anExpertShardThatCannotFitRefusesToStartAndLeavesNothingOpen() {
    NodeConfig cfg =
        config(
            "expert",
            Map.of(
                "node.memory-limit",
                "32m",
                "bind.host",
                "127.0.0.1",
                "grpc.port",
                "0",
                "cluster.name",
                "memcheck-" + System.nanoTime(),
                "cluster.port",
                "0",
                "cluster.join-wait-seconds",
                "0"));
    InsufficientMemoryException e =
        assertThrows(InsufficientMemoryException.class, () -> ExpertNode.start(cfg));
    assertTrue(e.getMessage().contains("needs"), e.getMessage());
  }
}
