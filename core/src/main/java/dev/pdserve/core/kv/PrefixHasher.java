package dev.pdserve.core.kv;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Chained hashes of a prompt's full KV blocks: the hash of block {@code i} covers the model, the
 * modality and every token of blocks {@code 0..i}, so equal hashes mean equal prefixes (up to a
 * 64-bit collision, which {@link PrefixCache} also guards against by comparing tokens). The router
 * and the prefill nodes compute the same hashes from the same token ids, which is what lets the
 * router send a prompt to the node that holds its prefix.
 *
 * <p>The root of the chain is derived from a model key and a modality, so a text block never
 * aliases a vision block with the same placeholder ids, nor another model's block. Thread-safe.
 */
public final class PrefixHasher {
  /** Modality of prompts made only of text token ids (the cluster's only kind today). */
  public static final String TEXT = "text";

  private final String modelKey;
  private final String modality;
  private final int blockSize;
  private final long root;

  public PrefixHasher(String modelKey, String modality, int blockSize) {
    if (modelKey == null || modelKey.isEmpty() || modality == null || modality.isEmpty()) {
      throw new IllegalArgumentException("a prefix hasher needs a model key and a modality");
    }
    if (blockSize < 1) {
      throw new IllegalArgumentException("block size must be >= 1, got " + blockSize);
    }
    this.modelKey = modelKey;
    this.modality = modality;
    this.blockSize = blockSize;
    MessageDigest d = sha256();
    d.update(
        ("pdserve-prefix-v1|" + modelKey + "|" + modality + "|" + blockSize)
            .getBytes(StandardCharsets.UTF_8));
    this.root = ByteBuffer.wrap(d.digest()).getLong();
  }

  /** Text prompts of the model {@code modelKey}, in blocks of {@code blockSize} tokens. */
  public static PrefixHasher text(String modelKey, int blockSize) {
    return new PrefixHasher(modelKey, TEXT, blockSize);
  }

  public String modelKey() {
    return modelKey;
  }

  public String modality() {
    return modality;
  }

  public int blockSize() {
    return blockSize;
  }

  /** One hash per full block of {@code tokens} ({@code tokens.length / blockSize} of them). */
  public long[] hashes(int[] tokens) {
    return hashes(tokens, tokens.length / blockSize);
  }

  /** Hashes of the first {@code blocks} full blocks of {@code tokens}. */
  public long[] hashes(int[] tokens, int blocks) {
    if (blocks < 0 || (long) blocks * blockSize > tokens.length) {
      throw new IllegalArgumentException(
          blocks + " blocks of " + blockSize + " do not fit " + tokens.length + " tokens");
    }
    long[] out = new long[blocks];
    MessageDigest d = sha256();
    ByteBuffer buf = ByteBuffer.allocate(8 + 4 * blockSize).order(ByteOrder.LITTLE_ENDIAN);
    long parent = root;
    for (int b = 0; b < blocks; b++) {
      buf.clear();
      buf.putLong(parent);
      for (int i = b * blockSize, end = i + blockSize; i < end; i++) {
        buf.putInt(tokens[i]);
      }
      d.update(buf.array(), 0, buf.position());
      parent = ByteBuffer.wrap(d.digest()).getLong();
      out[b] = parent;
    }
    return out;
  }

  private static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("this JVM has no SHA-256", e);
    }
  }
}
