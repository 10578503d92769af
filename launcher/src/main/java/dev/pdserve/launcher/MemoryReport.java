package dev.pdserve.launcher;

import dev.pdserve.model.memory.MemoryPlan;
import dev.pdserve.model.memory.MemoryPlan.Component;
import dev.pdserve.model.memory.MemoryPlan.RoleNeed;
import dev.pdserve.model.memory.WeightPrecision;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/** The memory section of {@code pdserve model info}: bytes per component, peak per role. */
final class MemoryReport {
  private MemoryReport() {}

  static void print(PrintWriter out, MemoryPlan plan, int expertShards) {
    WeightPrecision p = plan.precision();
    out.printf(
        "memory            --quantization %s (block %d), --kv-dtype %s%n",
        p.name(), p.blockSize(), plan.kvDtype().configName());
    for (Component c : Component.values()) {
      long b = plan.bytes(c);
      if (b == 0 && (c == Component.VISION || c == Component.LM_HEAD)) {
        continue;
      }
      out.printf("  %-26s %12s   %s%n", c.label(), MemoryPlan.gib(b), bits(c, plan));
    }
    out.printf("  %-26s %12s%n", "weights in all", MemoryPlan.gib(plan.weightBytes()));
    out.printf(
        "  %-26s %12s   a %s pool holds %d tokens%n",
        "KV per token (" + plan.kvDtype().configName() + ")",
        ModelCommand.bytes(plan.kvBytesPerToken()),
        MemoryPlan.gib(plan.settings().kvBudgetBytes()),
        plan.kvPoolTokens());
    if (plan.visionEncoderPeakBytes() > 0) {
      out.printf(
          "  %-26s %12s   one image at max_pixels (%d patches), attention in blocks of %d"
              + " (pdserve.vision.attention-chunk); not in the peaks below%n",
          "vision encoder peak",
          MemoryPlan.gib(plan.visionEncoderPeakBytes()),
          plan.visionMaxPatches(),
          plan.settings().visionAttentionChunk());
    }
    MemoryPlan.Settings s = plan.settings();
    out.printf(
        "peak per process  (KV pool %s, prefill chunk %d, decode batch %d, runtime allowance %s;"
            + " activations estimated)%n",
        MemoryPlan.gib(s.kvBudgetBytes()),
        s.prefillChunkTokens(),
        s.decodeMaxBatch(),
        MemoryPlan.gib(s.runtimeBytes()));
    out.printf(
        "  %-34s %12s %12s %12s %12s%n", "role", "total", "weights", "KV pool", "activations");
    for (RoleNeed n : roles(plan, expertShards)) {
      out.printf(
          "  %-34s %12s %12s %12s %12s%n",
          n.role(),
          MemoryPlan.gib(n.totalBytes()),
          MemoryPlan.gib(n.weightBytes()),
          MemoryPlan.gib(n.kvBytes()),
          MemoryPlan.gib(n.workspaceBytes()));
    }
  }

  static List<RoleNeed> roles(MemoryPlan plan, int expertShards) {
    List<RoleNeed> roles = new ArrayList<>();
    roles.add(plan.prefillWorker());
    roles.add(plan.decodeWorker());
    int e = plan.expertsPerGroup();
    if (e > 0) {
      int shards = Math.max(1, Math.min(expertShards, e));
      roles.add(plan.expertShard((e + shards - 1) / shards));
    }
    roles.add(plan.singleProcess());
    return roles;
  }

  private static String bits(Component c, MemoryPlan plan) {
    WeightPrecision p = plan.precision();
    return switch (c) {
      case ROUTED_EXPERTS ->
          p.earlyMoeLayers() > 0 && p.earlyRoutedExpertBits() != p.routedExpertBits()
              ? p.routedExpertBits()
                  + "-bit (the first "
                  + p.earlyMoeLayers()
                  + " MoE layers "
                  + p.earlyRoutedExpertBits()
                  + "-bit)"
              : p.routedExpertBits() + "-bit";
      case SHARED_EXPERTS -> p.sharedExpertBits() + "-bit";
      case DENSE_MLP -> p.denseMlpBits() + "-bit";
      case ATTENTION -> p.attentionBits() + "-bit";
      case GATES_AND_NORMS -> "32-bit";
      case EMBEDDINGS ->
          p.embeddingBits()
              + "-bit"
              + (plan.config().tieEmbeddings() && plan.bytes(Component.LM_HEAD) == 0
                  ? " (tied: also the LM head)"
                  : "");
      case LM_HEAD -> p.lmHeadBits() + "-bit";
      case VISION -> p.visionBits() + "-bit";
    };
  }
}
