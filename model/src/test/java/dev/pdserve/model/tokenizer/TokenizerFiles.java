package dev.pdserve.model.tokenizer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes a small but real Hugging Face tokenizer.json for tests: byte-level BPE (GPT-2's byte to
 * unicode mapping, so any text round-trips), two merges, and ERNIE's special tokens as added
 * tokens. Ids: specials 0..{@code SPECIALS.size()-1}, then the 256 byte symbols, then the merges.
 */
public final class TokenizerFiles {
  public static final List<String> SPECIALS =
      List.of(
          "<unk>",
          "<s>",
          "</s>",
          "<|begin_of_sentence|>",
          "<|end_of_sentence|>",
          "<think>",
          "</think>");
  public static final int FIRST_BYTE_ID = SPECIALS.size();
  public static final int HE_ID = FIRST_BYTE_ID + 256;
  public static final int LL_ID = HE_ID + 1;
  public static final int VOCAB = LL_ID + 1;

  private static final ObjectMapper JSON = new ObjectMapper();

  private TokenizerFiles() {}

  /** Writes {@code dir/tokenizer.json} and returns its path. */
  public static Path writeByteLevelBpe(Path dir) throws IOException {
    ObjectNode root = JSON.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ArrayNode added = root.putArray("added_tokens");
    for (int id = 0; id < SPECIALS.size(); id++) {
      ObjectNode t = added.addObject();
      t.put("id", id);
      t.put("content", SPECIALS.get(id));
      t.put("single_word", false);
      t.put("lstrip", false);
      t.put("rstrip", false);
      t.put("normalized", false);
      t.put("special", true);
    }
    root.putNull("normalizer");
    root.set("pre_tokenizer", byteLevel());
    root.putNull("post_processor");
    root.set("decoder", byteLevel());
    ObjectNode model = root.putObject("model");
    model.put("type", "BPE");
    model.putNull("dropout");
    model.putNull("unk_token");
    model.putNull("continuing_subword_prefix");
    model.putNull("end_of_word_suffix");
    model.put("fuse_unk", false);
    model.put("byte_fallback", false);
    ObjectNode vocab = model.putObject("vocab");
    for (int id = 0; id < SPECIALS.size(); id++) {
      vocab.put(SPECIALS.get(id), id);
    }
    char[] byteChars = bytesToUnicode();
    for (int b = 0; b < 256; b++) {
      vocab.put(String.valueOf(byteChars[b]), FIRST_BYTE_ID + b);
    }
    vocab.put("he", HE_ID);
    vocab.put("ll", LL_ID);
    ArrayNode merges = model.putArray("merges");
    merges.add("h e");
    merges.add("l l");
    Path file = dir.resolve("tokenizer.json");
    JSON.writerWithDefaultPrettyPrinter().writeValue(file.toFile(), root);
    return file;
  }

  /** Writes {@code dir/tokenizer_config.json} naming BOS/EOS/PAD, the ERNIE way. */
  public static void writeConfig(Path dir, String bos, String eos, String pad) throws IOException {
    ObjectNode cfg = JSON.createObjectNode();
    cfg.put("bos_token", bos);
    ObjectNode eosNode = cfg.putObject("eos_token"); // the AddedToken object form
    eosNode.put("content", eos);
    eosNode.put("special", true);
    if (pad != null) {
      cfg.put("pad_token", pad);
    }
    JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), cfg);
  }

  private static ObjectNode byteLevel() {
    ObjectNode n = JSON.createObjectNode();
    n.put("type", "ByteLevel");
    n.put("add_prefix_space", false);
    n.put("trim_offsets", true);
    n.put("use_regex", true);
    return n;
  }

  /** GPT-2's reversible byte to printable-char mapping. */
  private static char[] bytesToUnicode() {
    List<Integer> printable = new ArrayList<>();
    for (int b = '!'; b <= '~'; b++) {
      printable.add(b);
    }
    for (int b = 0xA1; b <= 0xAC; b++) {
      printable.add(b);
    }
    for (int b = 0xAE; b <= 0xFF; b++) {
      printable.add(b);
    }
    char[] map = new char[256];
    int extra = 0;
    for (int b = 0; b < 256; b++) {
      map[b] = printable.contains(b) ? (char) b : (char) (256 + extra++);
    }
    return map;
  }
}
