package dev.pdserve.launcher;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.core.config.NodeRole;
import dev.pdserve.launcher.node.WorkerNode;
import dev.pdserve.model.config.KvDtype;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.arrow.memory.RootAllocator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "worker",
    mixinStandardHelpOptions = true,
    description = "Run a worker (prefill or decode role).")
final class WorkerCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin NodeOptions node;

  @Option(
      names = "--role",
      paramLabel = "ROLE",
      description =
          "prefill or decode: the role this worker starts in (default: pdserve.role from --config"
              + " or PDSERVE_ROLE).")
  String role;

  @Option(
      names = "--experts-mode",
      paramLabel = "MODE",
      description = "local (every expert in this process, default) or remote (expert shards).")
  String expertsMode;

  @Option(
      names = "--kv-dtype",
      paramLabel = "DTYPE",
      converter = KvDtypeOption.class,
      description =
          KvDtypeOption.DESCRIPTION
              + " Every worker of a cluster must agree (key pdserve.kv.dtype, default fp32).")
  KvDtype kvDtype;

  @Mixin QuantizationOptions quantization;

  @Override
  public Integer call() throws Exception {
    if (role != null && !role.equals("prefill") && !role.equals("decode")) {
      throw new CommandLine.ParameterException(
          spec.commandLine(), "--role must be prefill or decode, got '" + role + "'");
    }
    Map<String, String> more = new LinkedHashMap<>();
    if (expertsMode != null) {
      more.put("pdserve.experts.mode", expertsMode);
    }
    if (kvDtype != null) {
      more.put(NodeConfigLoader.KV_DTYPE, kvDtype.configName());
    }
    quantization.putSettings(more);
    NodeConfig cfg = node.load(role, more);
    if (cfg.role() != NodeRole.PREFILL && cfg.role() != NodeRole.DECODE) {
      throw new CommandLine.ParameterException(
          spec.commandLine(),
          "a worker starts as prefill or decode (--role, or pdserve.role / PDSERVE_ROLE), got "
              + cfg.role().name().toLowerCase(Locale.ROOT));
    }
    RootAllocator allocator = new RootAllocator();
    WorkerNode w = WorkerNode.start(cfg, allocator, WorkerNode.ExpertBackendFactory.fromConfig());
    AutoCloseable all =
        () -> {
          w.drainAndClose(cfg.shutdown().timeout());
          allocator.close();
        };
    return NodeProcess.serve(
        all,
        cfg.shutdown().timeout(),
        cfg.role().name().toLowerCase(Locale.ROOT),
        cfg.nodeId(),
        w.grpcAddress(),
        spec.commandLine().getOut());
  }
}
