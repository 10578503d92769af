package dev.pdserve.core.config;

import static dev.pdserve.core.config.ConfigKeys.AUTH_API_KEYS_FILE;
import static dev.pdserve.core.config.ConfigKeys.AUTH_CLUSTER_TOKEN_FILE;
import static dev.pdserve.core.config.ConfigKeys.AUTH_HEALTH_OPEN;
import static dev.pdserve.core.config.ConfigKeys.AUTH_METRICS_OPEN;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_CERT;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_CLIENT_CA;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.ROUTER_TLS_KEY;
import static dev.pdserve.core.config.ConfigKeys.TLS_CA;
import static dev.pdserve.core.config.ConfigKeys.TLS_CERT;
import static dev.pdserve.core.config.ConfigKeys.TLS_ENABLED;
import static dev.pdserve.core.config.ConfigKeys.TLS_KEY;
import static dev.pdserve.core.config.ConfigKeys.TLS_RELOAD_INTERVAL;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

/**
 * Reads the security settings ({@link SecurityKeys}) out of {@link ConfigValues} for {@link
 * SettingsReader}: TLS between nodes and on the public API, API keys and the cluster token, with
 * the rules between those keys. Problems are recorded in the values, each naming its key.
 */
final class SecuritySettingsReader {
  private final ConfigValues values;

  SecuritySettingsReader(ConfigValues values) {
    this.values = values;
  }

  /**
   * Mutual TLS between nodes needs a certificate, its key and the cluster CA; the router's public
   * TLS takes the node's certificate and key unless given its own.
   */
  TlsSettings.Node tls() {
    Duration reload = values.get(TLS_RELOAD_INTERVAL);
    Optional<Path> cert = values.find(TLS_CERT);
    Optional<Path> key = values.find(TLS_KEY);
    Optional<Path> ca = values.find(TLS_CA);
    boolean cluster = values.get(TLS_ENABLED);
    if (cluster) {
      requireFile(cert.isPresent(), TLS_CERT, TLS_ENABLED);
      requireFile(key.isPresent(), TLS_KEY, TLS_ENABLED);
      requireFile(ca.isPresent(), TLS_CA, TLS_ENABLED);
    }
    Optional<Path> publicCert = values.find(ROUTER_TLS_CERT).or(() -> cert);
    Optional<Path> publicKey = values.find(ROUTER_TLS_KEY).or(() -> key);
    boolean publicApi = values.get(ROUTER_TLS_ENABLED);
    if (publicApi) {
      requireFile(publicCert.isPresent(), ROUTER_TLS_CERT, ROUTER_TLS_ENABLED);
      requireFile(publicKey.isPresent(), ROUTER_TLS_KEY, ROUTER_TLS_ENABLED);
    }
    if (!values.problems().isEmpty()) {
      return TlsSettings.Node.DISABLED;
    }
    return new TlsSettings.Node(
        new TlsSettings(cluster, cert, key, ca, reload),
        new TlsSettings(
            publicApi, publicCert, publicKey, values.find(ROUTER_TLS_CLIENT_CA), reload));
  }

  private void requireFile(boolean present, ConfigKey<?> file, ConfigKey<?> switchKey) {
    if (!present) {
      values.fail(file, "required when " + switchKey + " is true (a PEM file)");
    }
  }

  /** API keys and the cluster token: keys only together with a token. */
  AuthSettings auth() {
    Optional<Path> keys = readableFile(AUTH_API_KEYS_FILE);
    Optional<Path> token = readableFile(AUTH_CLUSTER_TOKEN_FILE);
    if (values.isSet(AUTH_API_KEYS_FILE) && !values.isSet(AUTH_CLUSTER_TOKEN_FILE)) {
      values.fail(
          AUTH_CLUSTER_TOKEN_FILE,
          "required when "
              + AUTH_API_KEYS_FILE
              + " is set: nodes present the cluster token to each other, and without one the"
              + " node-internal routes would be a way around the API keys");
    }
    return new AuthSettings(
        keys, token, values.get(AUTH_METRICS_OPEN), values.get(AUTH_HEALTH_OPEN));
  }

  /**
   * The path a key names. Whether it is readable is checked when the node starts ({@code
   * AccessControl}), not here: a manifest's settings load where its Secrets are not mounted.
   */
  private Optional<Path> readableFile(ConfigKey<String> key) {
    return values.find(key).map(Path::of);
  }
}
