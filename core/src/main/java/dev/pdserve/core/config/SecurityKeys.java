package dev.pdserve.core.config;

import java.nio.file.Path;
import java.time.Duration;

/**
 * Keys for TLS between nodes and on the public APIs, and for API keys and the cluster token. Part
 * of {@link ConfigKeys}, where every key is listed.
 */
public interface SecurityKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<Boolean> TLS_ENABLED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.tls.enabled",
              KeyTypes.BOOL,
              false,
              "mutual TLS on every gRPC and Flight connection between nodes (`--tls`): each side"
                  + " presents pdserve.tls.cert and accepts only peers whose certificate"
                  + " pdserve.tls.ca signed"));
  ConfigKey<Path> TLS_CERT =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.tls.cert",
              KeyTypes.FILE,
              "(required with TLS)",
              "the node's certificate chain, PEM (a Kubernetes TLS secret's `tls.crt`)"));
  ConfigKey<Path> TLS_KEY =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.tls.key",
              KeyTypes.FILE,
              "(required with TLS)",
              "the private key of pdserve.tls.cert, PEM (PKCS#8, PKCS#1 or SEC1, unencrypted;"
                  + " `tls.key`)"));
  ConfigKey<Path> TLS_CA =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.tls.ca",
              KeyTypes.FILE,
              "(required with TLS)",
              "the cluster CA, PEM (`ca.crt`): a peer is let in only with a certificate it signed"));
  ConfigKey<Duration> TLS_RELOAD_INTERVAL =
      GROUP.define(
          ConfigKey.of(
              "pdserve.tls.reload-interval",
              new ValueType.Timeout(),
              TlsSettings.DEFAULT_RELOAD_INTERVAL,
              "how often the certificate, key and CA files are read again (a rotated secret takes"
                  + " effect on new connections without a restart); 0 = never"));
  ConfigKey<Boolean> ROUTER_TLS_ENABLED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.tls.enabled",
              KeyTypes.BOOL,
              false,
              "router: TLS on the public gRPC and HTTP APIs (HTTPS), with pdserve.router.tls.cert"));
  ConfigKey<Path> ROUTER_TLS_CERT =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.cert",
              KeyTypes.FILE,
              "pdserve.tls.cert",
              "router: the public APIs' certificate chain, PEM (e.g. one a public CA signed)"));
  ConfigKey<Path> ROUTER_TLS_KEY =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.key",
              KeyTypes.FILE,
              "pdserve.tls.key",
              "router: the private key of pdserve.router.tls.cert, PEM"));
  ConfigKey<Path> ROUTER_TLS_CLIENT_CA =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.router.tls.client-ca",
              KeyTypes.FILE,
              "no client certificates",
              "router: when set, public clients must present a certificate this CA signed"));
  ConfigKey<String> AUTH_API_KEYS_FILE =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.auth.api-keys-file",
              ValueType.Text.any("a readable file"),
              "none: public routes open",
              "API keys, one a line (blank lines and `#` comments ignored), re-read within 2 s of"
                  + " a change (`--api-keys-file`); set, every public route — the router's gRPC and"
                  + " HTTP APIs, admin, node status, reflection — needs `Authorization: Bearer KEY`"
                  + " (HTTP 401 / gRPC UNAUTHENTICATED otherwise); needs"
                  + " pdserve.auth.cluster-token-file"));
  ConfigKey<String> AUTH_CLUSTER_TOKEN_FILE =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.auth.cluster-token-file",
              ValueType.Text.any("a readable file"),
              "none: node-internal routes open",
              "the cluster token: node-internal routes (prefill, decode, role switching, expert"
                  + " dispatch) need it and this node's clients send it (the first line; every line"
                  + " is accepted, so a rotation can list old and new); re-read within 2 s of a"
                  + " change; every node must share it"));
  ConfigKey<Boolean> AUTH_METRICS_OPEN =
      GROUP.define(
          ConfigKey.of(
              "pdserve.auth.metrics-open",
              KeyTypes.BOOL,
              AuthSettings.OFF.metricsOpen(),
              "with API keys: `/metrics` answers without a key (else it needs an API key or the"
                  + " cluster token, e.g. Prometheus' `authorization` scrape setting)"));
  ConfigKey<Boolean> AUTH_HEALTH_OPEN =
      GROUP.define(
          ConfigKey.of(
              "pdserve.auth.health-open",
              KeyTypes.BOOL,
              AuthSettings.OFF.healthOpen(),
              "with API keys: gRPC health and HTTP `/health` answer without a key (Kubernetes"
                  + " probes send none)"));
}
