package dev.pdserve.launcher;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.launcher.node.ExpertNode;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "expert",
    mixinStandardHelpOptions = true,
    description = "Run an expert shard hosting a range of routed experts.")
final class ExpertCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin NodeOptions node;

  @Option(
      names = "--experts",
      paramLabel = "FIRST-LAST",
      description =
          "Expert indices this shard hosts, of every MoE layer and both groups, e.g. 0-31 (default: all).")
  String experts;

  @Mixin QuantizationOptions quantization;

  @Override
  public Integer call() throws Exception {
    Map<String, String> more = new LinkedHashMap<>();
    if (experts != null) {
      more.put("pdserve.expert.range", experts);
    }
    quantization.putSettings(more);
    NodeConfig cfg = node.load("expert", more);
    ExpertNode e = ExpertNode.start(cfg);
    return NodeProcess.serve(
        () -> e.drainAndClose(cfg.shutdown().timeout()),
        cfg.shutdown().timeout(),
        "expert",
        cfg.nodeId(),
        e.grpcAddress(),
        spec.commandLine().getOut());
  }
}
