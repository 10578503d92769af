package dev.pdserve.core.kv;

import dev.pdserve.model.vision.ImageDigest;
import dev.pdserve.model.vision.PromptImage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;

/**
 * Chained hashes of a prompt's full KV blocks: the hash of block {@code i} covers the model, the
 * modality and every token of blocks {@code 0..i}, so equal hashes mean equal prefixes (up to a
 * 64-bit collision, which {@link PrefixCache} also guards against by comparing tokens). The router
 * and the prefill nodes compute the same hashes from the same token ids, which is what lets the
 * router send a prompt to the node that holds its prefix.
 *
 * <p>The root of the chain is derived from a model key and a modality, so a text block never
 * aliases a vision block with the same placeholder ids, nor another model's block.
 *
 * <p>A prompt with images ({@link #blocks(int[], List)}) has placeholder ids where its images are,
 * equal for every image of the same grid; so a block that holds any placeholder of an image also
 * mixes in that image's {@link ImageDigest} and where the block cuts into the image (the offset of
 * its first placeholder of the image within the image, and that placeholder's index in the block).
 * The same text with another image then never shares KV from the first block that holds the image
 * on, and the same image in the same place does. A block without image tokens hashes exactly as in
 * a text prompt. Thread-safe.
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

  /**
   * A prompt's full blocks as the prefix cache keys them: each block's chained hash and, for a
   * block that holds image placeholders, the image part of its key (which {@link PrefixCache}
   * compares with the tokens, so a hash collision cannot hand out another image's KV).
   *
   * @param hashes one per full block
   * @param imageKeys per block: the digests and offsets of the images it cuts into; null for a
   *     block of text only
   */
  public record Blocks(long[] hashes, byte[][] imageKeys) {
    public Blocks {
      if (hashes.length != imageKeys.length) {
        throw new IllegalArgumentException(
            hashes.length + " block hashes but " + imageKeys.length + " image keys");
      }
    }

    /** Blocks of a text prompt: no image keys. */
    public static Blocks text(long[] hashes) {
      return new Blocks(hashes, new byte[hashes.length][]);
    }

    public int length() {
      return hashes.length;
    }

    /** The image part of block {@code b}'s key; null for a text block. */
    public byte[] imageKey(int b) {
      return imageKeys[b];
    }
  }

  /** One hash per full block of {@code tokens} ({@code tokens.length / blockSize} of them). */
  public long[] hashes(int[] tokens) {
    return hashes(tokens, tokens.length / blockSize);
  }

  /**
   * One hash per full block of a prompt with {@code images} (each with its digest, in prompt order,
   * not overlapping); with no images, exactly {@link #hashes(int[])}.
   */
  public long[] hashes(int[] tokens, List<PromptImage> images) {
    return blocks(tokens, images).hashes();
  }

  /** The keys of every full block of a prompt with {@code images} (see {@link #hashes}). */
  public Blocks blocks(int[] tokens, List<PromptImage> images) {
    int blocks = tokens.length / blockSize;
    byte[][] keys = new byte[blocks][];
    int k = 0;
    for (int b = 0; b < blocks; b++) {
      int from = b * blockSize;
      int to = from + blockSize;
      while (k < images.size() && images.get(k).end() <= from) {
        k++;
      }
      ByteBuffer key = null;
      for (int j = k; j < images.size() && images.get(j).placeholderStart() < to; j++) {
        PromptImage img = images.get(j);
        if (img.digest() == null) {
          throw new IllegalArgumentException("image " + j + " of the prompt has no digest");
        }
        if (key == null) {
          key = ByteBuffer.allocate(keyBytes(b, k, images)).order(ByteOrder.LITTLE_ENDIAN);
        }
        int first = Math.max(from, img.placeholderStart());
        key.put(img.digest().bytes());
        key.putInt(first - img.placeholderStart()); // offset within the image
        key.putInt(first - from); // index in the block
      }
      keys[b] = key == null ? null : key.array();
    }
    return new Blocks(chain(tokens, keys), keys);
  }

  /** Bytes of block {@code b}'s image key: 40 per image it cuts into, from image {@code k}. */
  private int keyBytes(int b, int k, List<PromptImage> images) {
    int to = (b + 1) * blockSize;
    int n = 0;
    for (int j = k; j < images.size() && images.get(j).placeholderStart() < to; j++) {
      n++;
    }
    return n * (ImageDigest.LENGTH + 8);
  }

  /** Hashes of the first {@code blocks} full blocks of {@code tokens}. */
  public long[] hashes(int[] tokens, int blocks) {
    if (blocks < 0 || (long) blocks * blockSize > tokens.length) {
      throw new IllegalArgumentException(
          blocks + " blocks of " + blockSize + " do not fit " + tokens.length + " tokens");
    }
    return chain(tokens, new byte[blocks][]);
  }

  /**
   * The chain over the first {@code imageKeys.length} blocks: block b hashes its parent, its tokens
   * and, when not null, {@code imageKeys[b]}.
   */
  private long[] chain(int[] tokens, byte[][] imageKeys) {
    long[] out = new long[imageKeys.length];
    MessageDigest d = sha256();
    ByteBuffer buf = ByteBuffer.allocate(8 + 4 * blockSize).order(ByteOrder.LITTLE_ENDIAN);
    long parent = root;
    for (int b = 0; b < out.length; b++) {
      buf.clear();
      buf.putLong(parent);
      for (int i = b * blockSize, end = i + blockSize; i < end; i++) {
        buf.putInt(tokens[i]);
      }
      d.update(buf.array(), 0, buf.position());
      if (imageKeys[b] != null) {
        d.update(imageKeys[b]);
      }
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
