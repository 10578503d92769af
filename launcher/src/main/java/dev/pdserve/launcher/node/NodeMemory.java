package dev.pdserve.launcher.node;

import dev.pdserve.core.config.EngineSettings;
import dev.pdserve.core.config.ExpertRange;
import dev.pdserve.core.config.ExpertsMode;
import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.memory.MemoryPlan;
import dev.pdserve.model.memory.MemoryPlan.RoleNeed;
import dev.pdserve.model.memory.WeightPrecision;
import java.lang.management.ManagementFactory;
import java.util.Optional;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The check a worker or expert shard makes before it loads its weights: its share of the model
 * ({@link MemoryPlan}) against {@code pdserve.node.memory-limit}, or the machine's physical memory
 * when no limit is set. A share that does not fit refuses the start with a message saying how much
 * it needs and has.
 */
final class NodeMemory {
  private static final Logger LOG = LogManager.getLogger(NodeMemory.class);

  private NodeMemory() {}

  /**
   * The node's memory plan, its weights sized as the engine stores them in the node's quantization
   * mode ({@code pdserve.model.quantization}).
   */
  static MemoryPlan plan(NodeConfig config, ModelConfig model) {
    EngineSettings e = config.engine();
    // text only: the vision tower is not loaded
    ModelConfig planned = e.visionEnabled() ? model : model.withVision(Optional.empty());
    return MemoryPlan.of(
        planned,
        WeightPrecision.of(model, e.quantization()),
        e.kvDtype(),
        new MemoryPlan.Settings(
            e.kvBudgetBytes(),
            e.prefillChunkTokens(),
            e.decodeMaxBatch(),
            MemoryPlan.Settings.DEFAULT_RUNTIME_BYTES,
            e.visionAttentionChunk()));
  }

  /** A worker: its dense weights (and its experts when local), KV pool and activations. */
  static void requireWorkerFits(NodeConfig config, ModelConfig model) {
    boolean local = config.engine().expertsMode() == ExpertsMode.LOCAL;
    require(plan(config, model).worker(config.role() == NodeRole.PREFILL, local), config);
  }

  /** An expert shard hosting {@code range} of each group's experts. */
  static void requireShardFits(NodeConfig config, ModelConfig model, ExpertRange range) {
    require(plan(config, model).expertShard(range.size()), config);
  }

  private static void require(RoleNeed need, NodeConfig config) {
    long limit = config.serving().memoryLimitBytes();
    if (limit > 0) {
      MemoryPlan.requireFits(need, limit, "pdserve.node.memory-limit");
    } else {
      long physical = physicalBytes();
      if (physical <= 0) {
        LOG.warn("physical memory unknown: not checking that {} fits", need.role());
        return;
      }
      MemoryPlan.requireFits(
          need, physical, "the machine's physical memory; pdserve.node.memory-limit not set");
    }
    LOG.info(
        "{} needs about {} (weights {}, KV pool {}, activations {})",
        need.role(),
        MemoryPlan.gib(need.totalBytes()),
        MemoryPlan.gib(need.weightBytes()),
        MemoryPlan.gib(need.kvBytes()),
        MemoryPlan.gib(need.workspaceBytes()));
  }

  /** The machine's physical memory, or 0 when the JVM cannot say. */
  static long physicalBytes() {
    if (ManagementFactory.getOperatingSystemMXBean()
        instanceof com.sun.management.OperatingSystemMXBean os) {
      return os.getTotalMemorySize();
    }
    return 0;
  }
}
