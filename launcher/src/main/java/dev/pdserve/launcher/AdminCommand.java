package dev.pdserve.launcher;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.internal.v1.AdminServiceGrpc;
import dev.pdserve.internal.v1.ListNodesRequest;
import dev.pdserve.internal.v1.ListNodesResponse;
import dev.pdserve.internal.v1.NodeStatus;
import dev.pdserve.internal.v1.SwitchRoleRequest;
import dev.pdserve.internal.v1.SwitchRoleResponse;
import dev.pdserve.loadgen.ApiKey;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code pdserve admin status|switch}: cluster administration through a router. */
@Command(
    name = "admin",
    mixinStandardHelpOptions = true,
    description = "Cluster administration through a router: node status, role switches.",
    subcommands = {AdminCommand.StatusCommand.class, AdminCommand.SwitchCommand.class})
final class AdminCommand implements Runnable {
  @Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** A channel over the TLS settings given (plaintext without), presenting the API key if any. */
  static ManagedChannel channel(String router, TlsClientOptions tls, ApiKeyOption key) {
    TransportSecurity security = tls == null ? TransportSecurity.plaintext() : tls.security();
    return ApiKeyOption.channel(router, security, key == null ? ApiKey.NONE : key.apiKey());
  }

  static UserFacingException failure(StatusRuntimeException e, String router) {
    Status s = e.getStatus();
    String msg = s.getDescription() == null ? "(no message)" : s.getDescription();
    if (s.getCode() == Status.Code.UNAVAILABLE
        && s.getDescription() != null
        && s.getDescription().startsWith("io exception")) {
      msg = "cannot reach the router at " + router + " (" + msg + ")";
    }
    return new UserFacingException(s.getCode().name() + ": " + msg, CliErrors.FAILED);
  }

  @Command(
      name = "status",
      mixinStandardHelpOptions = true,
      description =
          "Every node of the cluster: role, state, epoch, load, free KV; and the coordinator.")
  static final class StatusCommand implements Callable<Integer> {
    @Spec picocli.CommandLine.Model.CommandSpec spec;

    @picocli.CommandLine.Mixin ApiKeyOption apiKey;

    @Option(
        names = "--router",
        required = true,
        paramLabel = "HOST:PORT",
        description = "The router to ask.")
    String router;

    @Mixin TlsClientOptions tls = new TlsClientOptions();

    @Option(
        names = "--json",
        description =
            "Print a JSON array with one object per node (id, role, state, epoch, coordinator, load, KV, URLs).")
    boolean json;

    @Option(
        names = "--timeout",
        paramLabel = "SECONDS",
        defaultValue = "10",
        description = "Deadline of the call. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Override
    public Integer call() throws Exception {
      ManagedChannel ch = channel(router, tls, apiKey);
      try {
        ListNodesResponse r =
            AdminServiceGrpc.newBlockingStub(ch)
                .withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS)
                .listNodes(ListNodesRequest.getDefaultInstance());
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
          out.println(
              new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(toJson(r)));
        } else {
          out.println(table(r));
        }
        out.flush();
        return 0;
      } catch (StatusRuntimeException e) {
        throw failure(e, router);
      } finally {
        ch.shutdownNow();
      }
    }

    static ArrayNode toJson(ListNodesResponse r) {
      ObjectMapper m = new ObjectMapper();
      ArrayNode arr = m.createArrayNode();
      for (NodeStatus n : r.getNodesList()) {
        ObjectNode o = arr.addObject();
        o.put("id", n.getId());
        o.put("role", n.getRole());
        o.put("state", n.getState());
        o.put("epoch", n.getEpoch());
        o.put("coordinator", n.getId().equals(r.getCoordinatorNodeId()));
        if (n.getId().equals(r.getCoordinatorNodeId())) {
          o.put("coordinator_term", r.getCoordinatorTerm());
        }
        o.put("grpc_address", n.getGrpcAddress());
        o.put("running_sequences", n.getRunningSequences());
        o.put("queued_prompt_tokens", n.getQueuedPromptTokens());
        o.put("kv_free_blocks", n.getKvFreeBlocks());
        o.put("kv_total_blocks", n.getKvTotalBlocks());
        putUrl(o, "metrics_url", n.getMetricsUrl());
        putUrl(o, "http_url", n.getHttpUrl());
      }
      return arr;
    }

    private static void putUrl(ObjectNode o, String key, String url) {
      if (url.isEmpty()) {
        o.putNull(key);
      } else {
        o.put(key, url);
      }
    }

    static String table(ListNodesResponse r) {
      StringBuilder sb = new StringBuilder();
      String fmt = "%-24s %-8s %-10s %6s %8s %12s %14s  %s%n";
      sb.append(
          String.format(
              Locale.ROOT,
              fmt,
              "ID",
              "ROLE",
              "STATE",
              "EPOCH",
              "RUNNING",
              "QUEUED_TOK",
              "KV_FREE",
              "ADDRESS"));
      for (NodeStatus n : r.getNodesList()) {
        String id = n.getId() + (n.getId().equals(r.getCoordinatorNodeId()) ? " *" : "");
        String kv =
            n.getKvTotalBlocks() == 0 ? "-" : n.getKvFreeBlocks() + "/" + n.getKvTotalBlocks();
        sb.append(
            String.format(
                Locale.ROOT,
                fmt,
                id,
                n.getRole(),
                n.getState(),
                n.getEpoch(),
                n.getRunningSequences(),
                n.getQueuedPromptTokens(),
                kv,
                n.getGrpcAddress()));
      }
      sb.append(
          r.getCoordinatorNodeId().isEmpty()
              ? "coordinator: none (no worker runs one: pdserve.coordinator.enabled=false?)"
              : "coordinator: "
                  + r.getCoordinatorNodeId()
                  + " (term "
                  + r.getCoordinatorTerm()
                  + ", marked *)");
      return sb.toString();
    }
  }

  @Command(
      name = "switch",
      mixinStandardHelpOptions = true,
      description =
          "Switch a worker to another role (drains it first; decode sequences migrate to other decode nodes). Exits 1 when refused.")
  static final class SwitchCommand implements Callable<Integer> {
    @Spec picocli.CommandLine.Model.CommandSpec spec;

    @picocli.CommandLine.Mixin ApiKeyOption apiKey;

    @Parameters(
        index = "0",
        paramLabel = "NODE_ID",
        description = "The worker to switch (see 'pdserve admin status').")
    String nodeId;

    @Option(
        names = "--to",
        required = true,
        paramLabel = "prefill|decode",
        description = "The role it should serve.")
    String to;

    @Option(
        names = "--router",
        required = true,
        paramLabel = "HOST:PORT",
        description = "The router to send the request through.")
    String router;

    @Mixin TlsClientOptions tls = new TlsClientOptions();

    @Option(
        names = "--expected-epoch",
        paramLabel = "N",
        defaultValue = "0",
        description =
            "Refuse unless the node is still at this registry epoch (from 'admin status'); 0 = any. Default: ${DEFAULT-VALUE}.")
    long expectedEpoch;

    @Option(
        names = "--timeout",
        paramLabel = "SECONDS",
        defaultValue = "300",
        description = "Deadline of the switch. Default: ${DEFAULT-VALUE}.")
    long timeoutSeconds;

    @Override
    public Integer call() {
      String role = to.trim().toLowerCase(Locale.ROOT);
      if (!role.equals("prefill") && !role.equals("decode")) {
        throw new IllegalArgumentException("--to: must be prefill or decode, got '" + to + "'");
      }
      if (expectedEpoch < 0) {
        throw new IllegalArgumentException("--expected-epoch: must be >= 0, got " + expectedEpoch);
      }
      ManagedChannel ch = channel(router, tls, apiKey);
      try {
        SwitchRoleResponse r =
            AdminServiceGrpc.newBlockingStub(ch)
                .withDeadlineAfter(timeoutSeconds, TimeUnit.SECONDS)
                .switchRole(
                    SwitchRoleRequest.newBuilder()
                        .setNodeId(nodeId)
                        .setTargetRole(role)
                        .setExpectedEpoch(expectedEpoch)
                        .setReason("admin")
                        .build());
        if (!r.getAccepted()) {
          throw new UserFacingException("refused: " + r.getMessage(), CliErrors.FAILED);
        }
        PrintWriter out = spec.commandLine().getOut();
        out.println(r.getMessage() + " in " + r.getDurationMillis() + " ms");
        out.flush();
        return 0;
      } catch (StatusRuntimeException e) {
        throw failure(e, router);
      } finally {
        ch.shutdownNow();
      }
    }
  }
}
