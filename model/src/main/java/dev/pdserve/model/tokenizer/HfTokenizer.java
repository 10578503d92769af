package dev.pdserve.model.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.OptionalInt;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * A Hugging Face {@code tokenizer.json} run by the Rust {@code tokenizers} library through DJL.
 *
 * <p>Loaded only from a local file: pdserve never resolves hub ids and never downloads. The native
 * library is the linux/macOS CPU build bundled in DJL's jar; {@link #open} puts DJL in offline mode
 * first (system property {@code ai.djl.offline=true}, unless the process set it or {@code
 * DJL_OFFLINE} already), because otherwise DJL probes the EC2 metadata endpoint and, on a machine
 * with CUDA, tries to download a CUDA build of the library instead of using the bundled one. DJL
 * extracts the library once into its cache ({@code ~/.djl.ai/tokenizers/}, or {@code
 * ENGINE_CACHE_DIR} / {@code DJL_CACHE_DIR}), which must be writable.
 *
 * <p>Special tokens are the {@code added_tokens} of {@code tokenizer.json} marked {@code special}.
 * BOS, EOS and PAD come from {@code tokenizer_config.json} next to it when that file names them,
 * else from the names given to {@link #open(Path, String, String, String)}. Truncation and padding
 * are off and {@link #encode} adds no BOS/EOS.
 *
 * <p>Holds a native handle: close it. {@code encode}/{@code decode} are thread-safe until then.
 */
public final class HfTokenizer implements Tokenizer, AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(HfTokenizer.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final HuggingFaceTokenizer delegate;
  private final Path source;
  private final int vocabSize;
  private final Map<String, Integer> specialIds;
  private final boolean[] special;
  private final int bosId;
  private final int eosId;
  private final int padId;

  private HfTokenizer(
      HuggingFaceTokenizer nativeTokenizer,
      Path source,
      int vocabSize,
      Map<String, Integer> specialIds,
      int bosId,
      int eosId,
      int padId) {
    this.delegate = nativeTokenizer;
    this.source = source;
    this.vocabSize = vocabSize;
    this.specialIds = specialIds;
    this.special = new boolean[vocabSize];
    for (int id : specialIds.values()) {
      special[id] = true;
    }
    this.bosId = bosId;
    this.eosId = eosId;
    this.padId = padId;
  }

  /**
   * Opens {@code path} (a {@code tokenizer.json}, or a directory holding one) with ERNIE's names as
   * the fallback for BOS and EOS ({@code <s>}, {@code </s>}) and no PAD fallback.
   */
  public static HfTokenizer open(Path path) {
    return open(path, "<s>", "</s>", null);
  }

  /**
   * Opens {@code path} (a {@code tokenizer.json}, or a directory holding one). {@code bosToken},
   * {@code eosToken} and {@code padToken} name the tokens to use where {@code
   * tokenizer_config.json} is absent or silent; a PAD that resolves to nothing falls back to EOS.
   *
   * @throws IllegalArgumentException if the file is missing or malformed, or BOS/EOS name no token
   */
  public static HfTokenizer open(Path path, String bosToken, String eosToken, String padToken) {
    Path file = Files.isDirectory(path) ? path.resolve("tokenizer.json") : path;
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(
          "tokenizer file "
              + file.toAbsolutePath()
              + " does not exist; give the path of a local tokenizer.json"
              + " (pdserve never downloads tokenizers)");
    }
    JsonNode root = readJson(file);
    JsonNode config = readConfig(file.resolveSibling("tokenizer_config.json"));

    Map<String, Integer> added = new HashMap<>();
    Map<String, Integer> specials = new HashMap<>();
    int maxId = -1;
    for (JsonNode t : root.path("added_tokens")) {
      String content = t.path("content").asText(null);
      int id = t.path("id").asInt(-1);
      if (content == null || id < 0) {
        throw new IllegalArgumentException(
            file + ": added_tokens entry needs a content and a non-negative id: " + t);
      }
      added.put(content, id);
      if (t.path("special").asBoolean(false)) {
        specials.put(content, id);
      }
      maxId = Math.max(maxId, id);
    }
    JsonNode vocab = root.path("model").path("vocab");
    if (vocab.isObject()) {
      for (Iterator<JsonNode> it = vocab.elements(); it.hasNext(); ) {
        maxId = Math.max(maxId, it.next().asInt());
      }
    } else if (vocab.isArray()) {
      maxId = Math.max(maxId, vocab.size() - 1);
    }
    if (maxId < 0) {
      throw new IllegalArgumentException(
          file + ": model.vocab and added_tokens are empty; is this a tokenizer.json?");
    }
    int vocabSize = maxId + 1;

    String bos = configToken(config, "bos_token", bosToken);
    String eos = configToken(config, "eos_token", eosToken);
    String pad = configToken(config, "pad_token", padToken);
    int bosId = resolve(file, "bos_token", bos, added, vocab);
    int eosId = resolve(file, "eos_token", eos, added, vocab);
    int padId = pad == null ? -1 : lookup(pad, added, vocab);
    if (padId < 0) {
      padId = eosId;
    }

    DjlOffline.ensure();
    HuggingFaceTokenizer nativeTokenizer;
    try {
      nativeTokenizer =
          HuggingFaceTokenizer.newInstance(
              file, Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false"));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read tokenizer " + file, e);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException(
          "cannot load tokenizer " + file + ": " + e.getMessage(), e);
    }
    HfTokenizer t =
        new HfTokenizer(
            nativeTokenizer,
            file.toAbsolutePath(),
            vocabSize,
            Collections.unmodifiableMap(specials),
            bosId,
            eosId,
            padId);
    LOG.info("loaded {}", t.describe());
    return t;
  }

  @Override
  public int[] encode(String text) {
    long[] ids = delegate.encode(text, false, false).getIds();
    int[] out = new int[ids.length];
    for (int i = 0; i < ids.length; i++) {
      out[i] = (int) ids[i];
    }
    return out;
  }

  @Override
  public String decode(int[] ids, boolean skipSpecialTokens) {
    long[] longs = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      int id = ids[i];
      if (id < 0 || id >= vocabSize) {
        throw new IllegalArgumentException(
            "token id " + id + " is outside the vocabulary (0.." + (vocabSize - 1) + ")");
      }
      longs[i] = id;
    }
    return delegate.decode(longs, skipSpecialTokens);
  }

  @Override
  public int vocabSize() {
    return vocabSize;
  }

  @Override
  public int bosId() {
    return bosId;
  }

  @Override
  public int eosId() {
    return eosId;
  }

  @Override
  public int padId() {
    return padId;
  }

  @Override
  public OptionalInt specialTokenId(String token) {
    Integer id = specialIds.get(token);
    return id == null ? OptionalInt.empty() : OptionalInt.of(id);
  }

  @Override
  public boolean isSpecial(int id) {
    return id >= 0 && id < vocabSize && special[id];
  }

  @Override
  public String describe() {
    return "hf tokenizer "
        + source
        + " (vocab "
        + vocabSize
        + ", "
        + specialIds.size()
        + " special tokens, bos="
        + bosId
        + ", eos="
        + eosId
        + ", pad="
        + padId
        + ")";
  }

  @Override
  public String toString() {
    return describe();
  }

  /** Frees the native tokenizer; idempotent. Using the tokenizer afterwards throws. */
  @Override
  public void close() {
    delegate.close();
  }

  private static JsonNode readJson(Path file) {
    try {
      return JSON.readTree(file.toFile());
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot parse " + file + " as JSON: " + e.getMessage(), e);
    }
  }

  private static JsonNode readConfig(Path file) {
    return Files.isRegularFile(file) ? readJson(file) : JSON.createObjectNode();
  }

  /**
   * A token name from tokenizer_config.json: a string or {"content": ...}; else {@code fallback}.
   */
  private static String configToken(JsonNode config, String key, String fallback) {
    JsonNode n = config.path(key);
    if (n.isTextual()) {
      return n.asText();
    }
    if (n.isObject() && n.path("content").isTextual()) {
      return n.path("content").asText();
    }
    return fallback;
  }

  private static int resolve(
      Path file, String key, String token, Map<String, Integer> added, JsonNode vocab) {
    if (token == null) {
      throw new IllegalArgumentException(
          file + ": no " + key + " in tokenizer_config.json and no fallback given");
    }
    int id = lookup(token, added, vocab);
    if (id < 0) {
      throw new IllegalArgumentException(
          file
              + ": "
              + key
              + " '"
              + token
              + "' is neither an added token nor in the model vocabulary");
    }
    return id;
  }

  private static int lookup(String token, Map<String, Integer> added, JsonNode vocab) {
    Integer a = added.get(token);
    if (a != null) {
      return a;
    }
    if (vocab.isObject() && vocab.has(token)) {
      return vocab.get(token).asInt();
    }
    if (vocab.isArray()) {
      for (int i = 0; i < vocab.size(); i++) {
        JsonNode piece = vocab.get(i);
        String s = piece.isArray() ? piece.path(0).asText() : piece.asText();
        if (token.equals(s)) {
          return i;
        }
      }
    }
    return -1;
  }

  /** Switches DJL to offline mode once, before its native library loads. */
  private static final class DjlOffline {
    private static final String PROPERTY = "ai.djl.offline";

    static {
      if (System.getProperty(PROPERTY) == null && System.getenv("DJL_OFFLINE") == null) {
        System.setProperty(PROPERTY, "true");
      }
    }

    private DjlOffline() {}

    static void ensure() {
      // the static initializer does the work
    }
  }
}
