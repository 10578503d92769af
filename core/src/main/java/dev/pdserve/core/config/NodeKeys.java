package dev.pdserve.core.config;

/**
 * Keys naming a node and the addresses and ports it serves on. Part of {@link ConfigKeys}, where
 * every key is listed.
 */
public interface NodeKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<String> NODE_ID =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.node.id",
              ValueType.Text.matching(
                  KeyTypes.NODE_ID_PATTERN,
                  "must be 1..128 characters of letters, digits, '.', '_' or '-' starting with a"
                      + " letter or digit",
                  "1..128 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit"),
              "generated",
              "stable id of the node in the registry; unset: the host name and a random suffix,"
                  + " new for each process"));
  ConfigKey<NodeRole> ROLE =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.role",
              ValueType.Choice.of(NodeRole.class),
              "(required)",
              "the role the node starts in; `pdserve worker` takes its starting role from here"
                  + " when `--role` is not given (how the Kubernetes StatefulSets set it)"));
  ConfigKey<String> BIND_HOST =
      GROUP.define(
          ConfigKey.of(
              "pdserve.bind.host",
              ValueType.Text.any("a host name or IP address"),
              "127.0.0.1",
              "interface the servers listen on; `0.0.0.0` for all of them"));
  ConfigKey<String> ADVERTISED_HOST =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.advertised.host",
              ValueType.Text.any("a host name or IP address"),
              "the bind host",
              "how other nodes reach this one (e.g. the pod IP); required when the bind host is a"
                  + " wildcard address"));
  ConfigKey<Integer> GRPC_PORT =
      GROUP.define(
          ConfigKey.of("pdserve.grpc.port", KeyTypes.PORT, 0, "gRPC port; 0 = any free port"));
  ConfigKey<Integer> GRPC_HEALTH_PORT =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.grpc.health-port",
              KeyTypes.PORT,
              "none: health on the gRPC port only",
              "a second, plaintext port serving only grpc.health.v1 (the node's health names and"
                  + " statuses) for Kubernetes gRPC probes, which cannot speak TLS; set it with"
                  + " pdserve.tls.enabled"));
  ConfigKey<Long> GRPC_MAX_INBOUND_BYTES =
      GROUP.define(
          ConfigKey.of(
              "pdserve.grpc.max-inbound-bytes",
              KeyTypes.MESSAGE_SIZE,
              (long) NetworkSettings.DEFAULT_GRPC_MAX_INBOUND_BYTES,
              "largest gRPC message the node accepts (a prompt with its images is one message:"
                  + " keep it above pdserve.router.images.max-per-prompt x max-bytes)"));
  ConfigKey<Integer> FLIGHT_PORT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.flight.port",
              KeyTypes.PORT,
              0,
              "Arrow Flight (KV transfer) port; 0 = any free port"));
  ConfigKey<Integer> METRICS_PORT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.metrics.port",
              KeyTypes.PORT,
              0,
              "Prometheus `/metrics` HTTP port (`--metrics-port`), 0 = any free port; the URL is"
                  + " published in the node's registry entry"));
  ConfigKey<Integer> HTTP_PORT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.http.port",
              KeyTypes.PORT,
              0,
              "router: port of the OpenAI-compatible HTTP API; 0 = any free port"));
  ConfigKey<Long> HTTP_MAX_BODY_BYTES =
      GROUP.define(
          ConfigKey.of(
              "pdserve.http.max-body-bytes",
              KeyTypes.MESSAGE_SIZE,
              (long) NetworkSettings.DEFAULT_HTTP_MAX_BODY_BYTES,
              "router: largest HTTP request body (larger: 413); images as data: URLs take 4/3"
                  + " of their bytes"));
}
