package dev.pdserve.core.tls;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.config.TlsSettings;
import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ServerCredentials;
import io.grpc.ServerInterceptor;
import io.grpc.TlsChannelCredentials;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.util.AdvancedTlsX509KeyManager;
import io.grpc.util.AdvancedTlsX509TrustManager;
import io.grpc.util.AdvancedTlsX509TrustManager.Verification;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * How one kind of connection is secured: plaintext, or TLS from PEM files — the credentials the
 * gRPC servers, channels, Flight KV endpoints and the HTTP API are built with. Certificates and
 * keys sit in gRPC's {@link AdvancedTlsX509KeyManager} and {@link AdvancedTlsX509TrustManager},
 * which every new handshake asks: {@link #reload()} (every {@code reloadInterval} on a thread owned
 * here, or when a test calls it) reads the files again and a rotated certificate takes effect on
 * the next connection, without a restart; connections already open keep theirs.
 *
 * <p>Kinds:
 *
 * <ul>
 *   <li>{@link #cluster}: mutual TLS between nodes — each side presents the node certificate and
 *       accepts only a peer whose certificate the cluster CA signed. Host names are not checked
 *       (pods change addresses; the CA is the cluster's own and signs only its members).
 *   <li>{@link #publicServer}: the router's public APIs — a server certificate, and client
 *       certificates only when a client CA is given.
 *   <li>{@link #client}: a CLI client of the public APIs — trusts a given CA (or the JDK's), checks
 *       the host name, presents a certificate when given one.
 * </ul>
 *
 * Key material never reaches a log line; reloads log the certificate's subject and serial.
 */
public final class TransportSecurity implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(TransportSecurity.class);
  private static final TransportSecurity PLAINTEXT =
      new TransportSecurity("plaintext", null, null, null, false, null);

  private final String kind;
  private final Path certFile;
  private final Path keyFile;
  private final Path caFile;
  private final boolean verifyHostName;
  private final AdvancedTlsX509KeyManager keyManager; // null: presents no certificate
  private final AdvancedTlsX509TrustManager trustManager; // null: see the kind
  private ScheduledExecutorService reloader; // set before the instance is published
  private String loadedIdentity; // file contents applied last, guarded by this
  private String loadedTrust; // guarded by this

  private TransportSecurity(
      String kind,
      Path certFile,
      Path keyFile,
      Path caFile,
      boolean verifyHostName,
      AdvancedTlsX509TrustManager systemTrust) {
    this.kind = kind;
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.caFile = caFile;
    this.verifyHostName = verifyHostName;
    this.keyManager = certFile == null ? null : new AdvancedTlsX509KeyManager();
    this.trustManager = caFile == null ? systemTrust : trustManager(verifyHostName);
  }

  /** No TLS: plaintext HTTP/2 and HTTP/1.1. */
  public static TransportSecurity plaintext() {
    return PLAINTEXT;
  }

  /**
   * Between nodes: mutual TLS as {@code settings} say when enabled, else plaintext. The files are
   * read now (errors name the file) and again every reload interval.
   *
   * @param nodeId the node whose reload thread logs under its id; null for none
   */
  public static TransportSecurity cluster(TlsSettings settings, String nodeId) throws IOException {
    if (!settings.enabled()) {
      return PLAINTEXT;
    }
    if (settings.ca().isEmpty()) {
      throw new IllegalArgumentException("mutual TLS between nodes needs the cluster CA file");
    }
    return start(
        new TransportSecurity(
            "mutual TLS",
            settings.cert().orElseThrow(),
            settings.key().orElseThrow(),
            settings.ca().get(),
            false,
            null),
        settings.reloadInterval(),
        nodeId);
  }

  /**
   * The server side of a public API: its certificate; client certificates signed by {@code
   * settings.ca()} required when that is present. Plaintext when not enabled.
   */
  public static TransportSecurity publicServer(TlsSettings settings, String nodeId)
      throws IOException {
    if (!settings.enabled()) {
      return PLAINTEXT;
    }
    return start(
        new TransportSecurity(
            settings.ca().isPresent() ? "TLS with client certificates" : "TLS",
            settings.cert().orElseThrow(),
            settings.key().orElseThrow(),
            settings.ca().orElse(null),
            false,
            null),
        settings.reloadInterval(),
        nodeId);
  }

  /**
   * A client of a public API: trusts {@code ca} (the JDK's default CAs when empty) and checks that
   * the server's certificate names the host dialled; presents {@code cert}/{@code key} when given
   * (both or neither). Read once.
   */
  public static TransportSecurity client(Optional<Path> ca, Optional<Path> cert, Optional<Path> key)
      throws IOException {
    if (cert.isPresent() != key.isPresent()) {
      throw new IllegalArgumentException("a client certificate needs its key, and a key its cert");
    }
    AdvancedTlsX509TrustManager system = null;
    if (ca.isEmpty()) {
      try {
        system = trustManager(true);
        system.useSystemDefaultTrustCerts();
      } catch (GeneralSecurityException e) {
        throw new IOException("cannot load the JDK's default CA certificates: " + e, e);
      }
    }
    TransportSecurity t =
        new TransportSecurity(
            "TLS client", cert.orElse(null), key.orElse(null), ca.orElse(null), true, system);
    t.reload();
    return t;
  }

  private static TransportSecurity start(
      TransportSecurity t, Duration reloadInterval, String nodeId) throws IOException {
    t.reload();
    if (!reloadInterval.isZero()) {
      t.reloader =
          Executors.newSingleThreadScheduledExecutor(
              new NamedThreadFactory("tls-reload", true, nodeId));
      long ms = reloadInterval.toMillis();
      t.reloader.scheduleWithFixedDelay(t::reloadQuietly, ms, ms, TimeUnit.MILLISECONDS);
    }
    return t;
  }

  private static AdvancedTlsX509TrustManager trustManager(boolean verifyHostName) {
    try {
      return AdvancedTlsX509TrustManager.newBuilder()
          .setVerification(
              verifyHostName
                  ? Verification.CERTIFICATE_AND_HOST_NAME_VERIFICATION
                  : Verification.CERTIFICATE_ONLY_VERIFICATION)
          .build();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot create a TLS trust manager", e);
    }
  }

  public boolean enabled() {
    return this != PLAINTEXT;
  }

  /** Whether servers with these credentials ask every client for a certificate. */
  public boolean requiresClientCertificates() {
    return enabled() && caFile != null && keyManager != null;
  }

  /**
   * Reads the files again and applies what changed: new connections present the new certificate and
   * trust the new CA. Unchanged files change nothing.
   *
   * @return whether anything changed
   * @throws IOException if a file cannot be read or parsed (the material in use stays)
   */
  public synchronized boolean reload() throws IOException {
    if (!enabled()) {
      return false;
    }
    boolean changed = false;
    if (keyManager != null) {
      String identity = PemFiles.read(certFile) + PemFiles.read(keyFile);
      if (!identity.equals(loadedIdentity)) {
        List<X509Certificate> chain = PemFiles.certificates(certFile);
        PrivateKey key = PemFiles.privateKey(keyFile);
        keyManager.updateIdentityCredentials(chain.toArray(new X509Certificate[0]), key);
        loadedIdentity = identity;
        changed = true;
        X509Certificate leaf = chain.get(0);
        LOG.info(
            "{}: certificate {} (serial {}, valid until {}) from {}",
            kind,
            leaf.getSubjectX500Principal().getName(),
            leaf.getSerialNumber().toString(16),
            leaf.getNotAfter().toInstant(),
            certFile);
      }
    }
    if (caFile != null) {
      String trust = PemFiles.read(caFile);
      if (!trust.equals(loadedTrust)) {
        List<X509Certificate> cas = PemFiles.certificates(caFile);
        try {
          trustManager.updateTrustCredentials(cas.toArray(new X509Certificate[0]));
        } catch (GeneralSecurityException e) {
          throw new IOException(caFile + ": cannot trust these certificates (" + e + ")", e);
        }
        loadedTrust = trust;
        changed = true;
        LOG.info("{}: trusting {} CA certificate(s) from {}", kind, cas.size(), caFile);
      }
    }
    return changed;
  }

  private void reloadQuietly() {
    try {
      reload();
    } catch (IOException | RuntimeException e) {
      LOG.warn("{}: reloading the certificate files failed, keeping the loaded ones: {}", kind, e);
    }
  }

  /** Credentials of a gRPC server (Netty). */
  public ServerCredentials serverCredentials() {
    if (!enabled()) {
      return InsecureServerCredentials.create();
    }
    TlsServerCredentials.Builder b = TlsServerCredentials.newBuilder().keyManager(keyManager);
    if (caFile != null) {
      b.trustManager(trustManager).clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
    }
    return b.build();
  }

  /** Credentials of a gRPC client channel (Netty). */
  public ChannelCredentials channelCredentials() {
    if (!enabled()) {
      return InsecureChannelCredentials.create();
    }
    TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder();
    if (keyManager != null) {
      b.keyManager(keyManager);
    }
    if (trustManager != null) {
      b.trustManager(trustManager);
    }
    return b.build();
  }

  /**
   * A JDK TLS context with these credentials for a client built on {@code java.net.http} (the
   * benchmark's HTTPS client): the same key and trust managers as the gRPC channels, so reloads
   * apply to it too. Empty when plaintext.
   */
  public Optional<SSLContext> clientSslContext() {
    if (!enabled()) {
      return Optional.empty();
    }
    try {
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(
          keyManager == null ? null : new KeyManager[] {keyManager},
          trustManager == null ? null : new TrustManager[] {trustManager},
          null);
      return Optional.of(ctx);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("cannot create a TLS context: " + e, e);
    }
  }

  /**
   * A Netty server context for gRPC (HTTP/2 by ALPN) with these credentials, for servers built by
   * another library (Arrow Flight's {@code FlightServer}); empty when plaintext.
   */
  public Optional<SslContext> grpcServerContext() {
    if (!enabled()) {
      return Optional.empty();
    }
    return Optional.of(build(GrpcSslContexts.configure(serverContextBuilder())));
  }

  /** A Netty server context for HTTP/1.1 (the OpenAI-compatible API); empty when plaintext. */
  public Optional<SslContext> httpServerContext() {
    if (!enabled()) {
      return Optional.empty();
    }
    return Optional.of(build(serverContextBuilder()));
  }

  private SslContextBuilder serverContextBuilder() {
    SslContextBuilder b = SslContextBuilder.forServer(keyManager);
    if (caFile != null) {
      b.trustManager(trustManager).clientAuth(ClientAuth.REQUIRE);
    }
    return b;
  }

  private static SslContext build(SslContextBuilder b) {
    try {
      return b.build();
    } catch (SSLException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * A server interceptor refusing (UNAUTHENTICATED) every call whose connection did not present a
   * verified client certificate, when these credentials ask for one: the KV endpoints' check that
   * the writer is a cluster member, whatever transfer id it knows. The handshake refuses such
   * clients already; this also holds if a server were built without the credentials. Lets
   * everything through when no client certificate is asked for.
   */
  public ServerInterceptor peerCertificateRequired() {
    return PeerCertificates.required(requiresClientCertificates());
  }

  /** Stops the reload thread. The credentials stay usable. */
  @Override
  public void close() {
    if (reloader != null) {
      reloader.shutdownNow();
    }
  }

  @Override
  public String toString() {
    if (!enabled()) {
      return kind;
    }
    return kind
        + (certFile == null ? "" : " (certificate " + certFile)
        + (caFile == null ? "" : (certFile == null ? " (" : ", ") + "CA " + caFile)
        + (certFile == null && caFile == null ? "" : ")");
  }
}
