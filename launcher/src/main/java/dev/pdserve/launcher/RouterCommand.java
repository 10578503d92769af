package dev.pdserve.launcher;

import dev.pdserve.core.config.NodeConfig;
import dev.pdserve.core.config.NodeConfigLoader;
import dev.pdserve.launcher.node.RouterNode;
import dev.pdserve.router.RouterOptions;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(
    name = "router",
    mixinStandardHelpOptions = true,
    description = "Run a router: the public gRPC and OpenAI-compatible HTTP APIs of a cluster.")
final class RouterCommand implements Callable<Integer> {
  @Spec CommandLine.Model.CommandSpec spec;
  @Mixin NodeOptions node;

  @Option(
      names = "--max-active",
      defaultValue = "256",
      description = "Requests in flight at once. Default: ${DEFAULT-VALUE}.")
  int maxActive;

  @Option(
      names = "--max-queued",
      defaultValue = "1024",
      description = "Requests waiting beyond that before refusing. Default: ${DEFAULT-VALUE}.")
  int maxQueued;

  @Option(
      names = "--http-port",
      paramLabel = "N",
      description =
          "Port of the OpenAI-compatible HTTP API (0 = any free port; key pdserve.http.port).")
  Integer httpPort;

  @Override
  public Integer call() throws Exception {
    Map<String, String> more = new HashMap<>();
    more.put(NodeConfigLoader.CLUSTER_LITE_MEMBER, "true");
    if (httpPort != null) {
      more.put(NodeConfigLoader.HTTP_PORT, httpPort.toString());
    }
    NodeConfig cfg = node.load("router", more);
    RouterNode r = RouterNode.start(cfg, new RouterOptions(maxActive, maxQueued, 2));
    return NodeProcess.serve(
        () -> r.drainAndClose(cfg.shutdown().timeout()),
        cfg.shutdown().timeout(),
        "router",
        cfg.nodeId(),
        r.grpcAddress(),
        "http=" + r.httpAddress(),
        spec.commandLine().getOut());
  }
}
