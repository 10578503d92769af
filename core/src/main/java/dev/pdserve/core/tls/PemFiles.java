package dev.pdserve.core.tls;

import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.openssl.PEMEncryptedKeyPair;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;

/**
 * Certificates and private keys read from PEM text with Bouncy Castle's parser: certificate chains
 * (leaf first), and unencrypted keys as PKCS#8 ({@code PRIVATE KEY}), PKCS#1 ({@code RSA PRIVATE
 * KEY}) or SEC1 ({@code EC PRIVATE KEY}) — what cert-manager and openssl write. Errors name the
 * file and never carry key material.
 */
public final class PemFiles {
  private PemFiles() {}

  /** Every certificate in {@code file}, in order. */
  public static List<X509Certificate> certificates(Path file) throws IOException {
    return certificates(read(file), file.toString());
  }

  static List<X509Certificate> certificates(String pem, String origin) throws IOException {
    List<X509Certificate> out = new ArrayList<>();
    JcaX509CertificateConverter converter = new JcaX509CertificateConverter();
    try (PEMParser parser = new PEMParser(new StringReader(pem))) {
      Object o;
      while ((o = parser.readObject()) != null) {
        if (o instanceof X509CertificateHolder h) {
          out.add(converter.getCertificate(h));
        }
      }
    } catch (CertificateException | RuntimeException e) {
      throw new IOException(origin + ": not a PEM certificate (" + e.getMessage() + ")", e);
    }
    if (out.isEmpty()) {
      throw new IOException(origin + ": no PEM certificate (-----BEGIN CERTIFICATE-----) in it");
    }
    return out;
  }

  /** The (first) private key in {@code file}. */
  public static PrivateKey privateKey(Path file) throws IOException {
    return privateKey(read(file), file.toString());
  }

  static PrivateKey privateKey(String pem, String origin) throws IOException {
    JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
    try (Reader r = new StringReader(pem);
        PEMParser parser = new PEMParser(r)) {
      Object o;
      while ((o = parser.readObject()) != null) {
        if (o instanceof PEMKeyPair kp) {
          return converter.getKeyPair(kp).getPrivate();
        }
        if (o instanceof PrivateKeyInfo info) {
          return converter.getPrivateKey(info);
        }
        if (o instanceof PEMEncryptedKeyPair || o instanceof PKCS8EncryptedPrivateKeyInfo) {
          throw new IOException(origin + ": the private key is encrypted; give it unencrypted");
        }
      }
    } catch (IOException e) {
      throw e;
    } catch (RuntimeException e) {
      throw new IOException(origin + ": not a PEM private key (" + e.getClass().getName() + ")", e);
    }
    throw new IOException(origin + ": no PEM private key (-----BEGIN PRIVATE KEY-----) in it");
  }

  static String read(Path file) throws IOException {
    return Files.readString(file, StandardCharsets.ISO_8859_1);
  }
}
