package dev.pdserve.core.tls;

import dev.pdserve.core.config.TlsSettings;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/** Certificate files for tests: a CA and node certificates it issued, written under a directory. */
public final class TestPki {
  public final CertificateAuthority ca;
  public final Path dir;
  public final Path caFile;

  public TestPki(Path dir, String name) throws IOException {
    this.dir = dir;
    this.ca = CertificateAuthority.create(name);
    this.caFile = dir.resolve(name + "-ca.crt");
    ca.writeCertificate(caFile);
  }

  /** A node certificate for localhost / 127.0.0.1 written as {@code <name>.crt/.key}. */
  public TlsSettings node(String name) throws IOException {
    Path cert = dir.resolve(name + ".crt");
    Path key = dir.resolve(name + ".key");
    ca.issue(name, List.of("localhost", "127.0.0.1")).write(cert, key);
    return TlsSettings.mutual(cert, key, caFile).withReloadInterval(Duration.ZERO);
  }

  /**
   * The serial of the certificate the TLS server on {@code 127.0.0.1:port} presents to a new
   * connection (a JDK client trusting {@code trusted}, presenting {@code client}).
   */
  public static BigInteger serverSerial(
      int port, X509Certificate trusted, CertificateAuthority.Issued client) throws Exception {
    char[] pw = "test".toCharArray();
    KeyStore keys = KeyStore.getInstance("PKCS12");
    keys.load(null, null);
    keys.setKeyEntry("client", client.key(), pw, new Certificate[] {client.certificate()});
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(keys, pw);
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    trust.setCertificateEntry("ca", trusted);
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    try (SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", port)) {
      SSLParameters p = s.getSSLParameters();
      p.setApplicationProtocols(new String[] {"h2"});
      s.setSSLParameters(p);
      s.startHandshake();
      return ((X509Certificate) s.getSession().getPeerCertificates()[0]).getSerialNumber();
    }
  }
}
