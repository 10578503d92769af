package dev.pdserve.core.tls;

import com.google.common.net.InetAddresses;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.util.io.pem.PemObjectGenerator;

/**
 * A throw-away certificate authority made with Bouncy Castle: an EC P-256 CA certificate and the
 * certificates it issues (server and client use, subject alternative names for the hosts given).
 * What {@code pdserve local --tls} runs a cluster with, and what tests make clusters, rotations and
 * foreign CAs with. Production certificates come from the deployment (cert-manager, a secret).
 */
public final class CertificateAuthority {
  /** How long {@link #create} certificates are valid (from an hour back, for clock skew). */
  public static final Duration DEFAULT_VALIDITY = Duration.ofDays(30);

  private static final SecureRandom RANDOM = new SecureRandom();

  private final KeyPair keys;
  private final X509Certificate certificate;
  private final Duration validity;

  private CertificateAuthority(KeyPair keys, X509Certificate certificate, Duration validity) {
    this.keys = keys;
    this.certificate = certificate;
    this.validity = validity;
  }

  /** A new CA named {@code name} (its common name), valid {@link #DEFAULT_VALIDITY}. */
  public static CertificateAuthority create(String name) {
    return create(name, Instant.now(), DEFAULT_VALIDITY);
  }

  /** A new CA valid from an hour before {@code now} for {@code validity}. */
  public static CertificateAuthority create(String name, Instant now, Duration validity) {
    KeyPair keys = newKeyPair();
    X500Name subject = new X500Name("CN=" + name + ",O=pdserve");
    try {
      X509v3CertificateBuilder b =
          builder(subject, subject, keys, now, validity)
              .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
              .addExtension(
                  Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
              .addExtension(
                  Extension.subjectKeyIdentifier,
                  false,
                  new JcaX509ExtensionUtils().createSubjectKeyIdentifier(keys.getPublic()));
      return new CertificateAuthority(keys, sign(b, keys.getPrivate()), validity);
    } catch (CertIOException | GeneralSecurityException e) {
      throw new IllegalStateException("cannot create a CA certificate", e);
    }
  }

  /** The CA certificate. */
  public X509Certificate certificate() {
    return certificate;
  }

  /**
   * A certificate for {@code commonName}, usable by servers and clients, naming {@code hosts} (DNS
   * names or IP addresses) as subject alternative names; valid from an hour back for this CA's
   * validity. Each has a new random serial and a new key.
   */
  public Issued issue(String commonName, List<String> hosts) {
    return issue(commonName, hosts, Instant.now());
  }

  public Issued issue(String commonName, List<String> hosts, Instant now) {
    KeyPair leaf = newKeyPair();
    GeneralName[] names =
        hosts.stream()
            .map(
                h ->
                    InetAddresses.isInetAddress(h)
                        ? new GeneralName(GeneralName.iPAddress, h)
                        : new GeneralName(GeneralName.dNSName, h))
            .toArray(GeneralName[]::new);
    try {
      JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
      X509v3CertificateBuilder b =
          builder(
                  X500Name.getInstance(certificate.getSubjectX500Principal().getEncoded()),
                  new X500Name("CN=" + commonName + ",O=pdserve"),
                  leaf,
                  now,
                  validity)
              .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
              .addExtension(
                  Extension.keyUsage,
                  true,
                  new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyAgreement))
              .addExtension(
                  Extension.extendedKeyUsage,
                  false,
                  new ExtendedKeyUsage(
                      new KeyPurposeId[] {
                        KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth
                      }))
              .addExtension(
                  Extension.authorityKeyIdentifier,
                  false,
                  ext.createAuthorityKeyIdentifier(certificate))
              .addExtension(
                  Extension.subjectKeyIdentifier,
                  false,
                  ext.createSubjectKeyIdentifier(leaf.getPublic()));
      if (names.length > 0) {
        b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
      }
      return new Issued(sign(b, keys.getPrivate()), leaf.getPrivate());
    } catch (CertIOException | GeneralSecurityException e) {
      throw new IllegalStateException("cannot issue a certificate for " + commonName, e);
    }
  }

  /** Writes the CA certificate to {@code file}, PEM. */
  public void writeCertificate(Path file) throws IOException {
    Files.writeString(file, pem(certificate), StandardCharsets.US_ASCII);
  }

  /** An issued certificate and its private key. */
  public record Issued(X509Certificate certificate, PrivateKey key) {
    /**
     * Writes the certificate ({@code tls.crt} style) and the key (PKCS#8, {@code tls.key} style,
     * readable by its owner only where the file system has POSIX permissions). Each file is written
     * whole next to its target and moved into place, so a reloading reader never sees half of one.
     */
    public void write(Path certFile, Path keyFile) throws IOException {
      writeAtomically(keyFile, pem(new JcaPKCS8Generator(key, null)), true);
      writeAtomically(certFile, pem(certificate), false);
    }

    @Override
    public String toString() {
      return "Issued[" + certificate.getSubjectX500Principal() + "]"; // never the key
    }
  }

  /**
   * Files of a throw-away cluster PKI under {@code dir}: {@code ca.crt} and one node certificate
   * ({@code node.crt}, {@code node.key}) for {@code localhost} and {@code 127.0.0.1}, which every
   * node of a local cluster presents.
   */
  public static LocalFiles writeLocalCluster(Path dir) throws IOException {
    CertificateAuthority ca = create("pdserve local CA");
    LocalFiles f =
        new LocalFiles(dir.resolve("ca.crt"), dir.resolve("node.crt"), dir.resolve("node.key"));
    ca.writeCertificate(f.ca());
    ca.issue("pdserve-node", List.of("localhost", "127.0.0.1")).write(f.cert(), f.key());
    return f;
  }

  /** Where {@link #writeLocalCluster} wrote the cluster CA and the node certificate and key. */
  public record LocalFiles(Path ca, Path cert, Path key) {}

  private static X509v3CertificateBuilder builder(
      X500Name issuer, X500Name subject, KeyPair keys, Instant now, Duration validity) {
    return new JcaX509v3CertificateBuilder(
        issuer,
        new BigInteger(63, RANDOM).add(BigInteger.ONE),
        Date.from(now.minus(Duration.ofHours(1))),
        Date.from(now.plus(validity)),
        subject,
        keys.getPublic());
  }

  private static X509Certificate sign(X509v3CertificateBuilder b, PrivateKey signer)
      throws GeneralSecurityException {
    try {
      ContentSigner s = new JcaContentSignerBuilder("SHA256withECDSA").build(signer);
      return new JcaX509CertificateConverter().getCertificate(b.build(s));
    } catch (OperatorCreationException e) {
      throw new GeneralSecurityException(e);
    }
  }

  private static KeyPair newKeyPair() {
    try {
      KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
      g.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
      return g.generateKeyPair();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("EC P-256 keys are not available", e);
    }
  }

  private static String pem(Object o) {
    StringWriter out = new StringWriter();
    try (JcaPEMWriter w = new JcaPEMWriter(out)) {
      if (o instanceof PemObjectGenerator g) {
        w.writeObject(g);
      } else {
        w.writeObject(o);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toString();
  }

  private static void writeAtomically(Path target, String text, boolean secret) throws IOException {
    Path dir = target.toAbsolutePath().getParent();
    Path tmp = Files.createTempFile(dir, ".pdserve-", ".tmp");
    try {
      if (secret && dir.getFileSystem().supportedFileAttributeViews().contains("posix")) {
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
      }
      Files.writeString(tmp, text, StandardCharsets.US_ASCII);
      Files.move(
          tmp,
          target,
          java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }
}
