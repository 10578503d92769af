package dev.pdserve.core.auth;

import com.google.common.base.Ticker;
import dev.pdserve.core.config.AuthSettings;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;

/**
 * Decides whether a call may reach a {@link Route}, from the credential it presents ({@code
 * Authorization: Bearer KEY}, as an HTTP header or gRPC metadata): API keys open public routes, the
 * cluster token opens every route, metrics and health may be open. Built once per node from its
 * {@link AuthSettings}; the files are re-read when they change ({@link SecretFile}).
 *
 * <p>A refusal's message tells a person what to do and never repeats what was sent.
 */
public final class AccessControl {
  /** The HTTP header and gRPC metadata key (lower case on the wire) of the credential. */
  public static final String AUTHORIZATION = "authorization";

  /** The {@code WWW-Authenticate} value an HTTP 401 carries. */
  public static final String CHALLENGE = "Bearer realm=\"pdserve\"";

  static final String MISSING_KEY =
      "this pdserve endpoint needs an API key: send the header `Authorization: Bearer <key>`"
          + " (pdserve CLI: --api-key or the PDSERVE_API_KEY environment variable); the keys are"
          + " those in the server's pdserve.auth.api-keys-file";
  static final String WRONG_KEY =
      "the API key sent is not one this server accepts: check it for typos or whether it was"
          + " revoked (the server reads its keys from pdserve.auth.api-keys-file and picks up"
          + " changes within seconds)";
  static final String MALFORMED =
      "the Authorization header must be `Bearer <key>` (one space, then the key)";
  static final String MISSING_TOKEN =
      "this is a node-internal pdserve endpoint: only pdserve nodes presenting the cluster token"
          + " (pdserve.auth.cluster-token-file) may call it";
  static final String WRONG_TOKEN =
      "the credential sent is not this cluster's token (pdserve.auth.cluster-token-file); API keys"
          + " do not open node-internal endpoints";

  /** Whether a call may go on, and if not, why (for the caller). */
  public record Decision(boolean allowed, String message) {
    static final Decision ALLOW = new Decision(true, "");

    static Decision refuse(String message) {
      return new Decision(false, message);
    }
  }

  private static final AccessControl OPEN = new AccessControl(null, null, true, true);

  private final SecretFile apiKeys; // null: public routes open
  private final SecretFile clusterToken; // null: internal routes open
  private final boolean metricsOpen;
  private final boolean healthOpen;

  private AccessControl(
      SecretFile apiKeys, SecretFile clusterToken, boolean metricsOpen, boolean healthOpen) {
    this.apiKeys = apiKeys;
    this.clusterToken = clusterToken;
    this.metricsOpen = metricsOpen;
    this.healthOpen = healthOpen;
  }

  /** Every route open, no credential sent (auth off). */
  public static AccessControl open() {
    return OPEN;
  }

  /**
   * The access control {@code settings} describe, its files read now.
   *
   * @throws IllegalArgumentException if a file cannot be read or holds no secret
   */
  public static AccessControl of(AuthSettings settings, Ticker ticker) {
    return of(settings, ticker, SecretFile.DEFAULT_RELOAD_PERIOD);
  }

  /** As above, looking at the files for changes every {@code reloadPeriod} of {@code ticker}. */
  public static AccessControl of(AuthSettings settings, Ticker ticker, Duration reloadPeriod) {
    if (!settings.enabled()) {
      return OPEN;
    }
    SecretFile keys =
        settings
            .apiKeysFile()
            .map(
                p ->
                    new SecretFile(
                        p, "API keys file (pdserve.auth.api-keys-file)", ticker, reloadPeriod))
            .orElse(null);
    SecretFile token =
        settings
            .clusterTokenFile()
            .map(
                p ->
                    new SecretFile(
                        p,
                        "cluster token file (pdserve.auth.cluster-token-file)",
                        ticker,
                        reloadPeriod))
            .orElse(null);
    return new AccessControl(keys, token, settings.metricsOpen(), settings.healthOpen());
  }

  /** Whether any route asks for credentials. */
  public boolean enabled() {
    return apiKeys != null || clusterToken != null;
  }

  /** The token this node's clients present to other nodes (the token file's first line). */
  public Optional<String> clusterToken() {
    return clusterToken == null ? Optional.empty() : Optional.of(clusterToken.first());
  }

  /**
   * Whether a call presenting {@code authorization} (the header's value, or null) may reach {@code
   * route}.
   */
  public Decision check(Route route, String authorization) {
    return switch (route) {
      case HEALTH -> healthOpen ? Decision.ALLOW : checkPublic(authorization);
      case METRICS -> metricsOpen ? Decision.ALLOW : checkPublic(authorization);
      case PUBLIC -> checkPublic(authorization);
      case CLUSTER -> checkCluster(authorization);
    };
  }

  private Decision checkPublic(String authorization) {
    if (apiKeys == null) {
      return Decision.ALLOW;
    }
    if (authorization == null || authorization.isBlank()) {
      return Decision.refuse(MISSING_KEY);
    }
    String presented = bearer(authorization);
    if (presented == null) {
      return Decision.refuse(MALFORMED);
    }
    // Both files are always compared, so the time taken says nothing about which matched.
    boolean key = apiKeys.matches(presented);
    boolean token = clusterToken != null && clusterToken.matches(presented);
    return key | token ? Decision.ALLOW : Decision.refuse(WRONG_KEY);
  }

  private Decision checkCluster(String authorization) {
    if (clusterToken == null) {
      return Decision.ALLOW;
    }
    if (authorization == null || authorization.isBlank()) {
      return Decision.refuse(MISSING_TOKEN);
    }
    String presented = bearer(authorization);
    if (presented == null) {
      return Decision.refuse(MALFORMED);
    }
    return clusterToken.matches(presented) ? Decision.ALLOW : Decision.refuse(WRONG_TOKEN);
  }

  /** The credential of {@code Bearer <credential>} (scheme case-insensitive), or null. */
  static String bearer(String authorization) {
    String v = authorization.strip();
    if (v.length() < 8 || !v.substring(0, 7).toLowerCase(Locale.ROOT).equals("bearer ")) {
      return null;
    }
    String credential = v.substring(7).strip();
    return credential.isEmpty() ? null : credential;
  }

  /** The header value that presents {@code credential}. */
  public static String bearerValue(String credential) {
    return "Bearer " + credential;
  }
}
