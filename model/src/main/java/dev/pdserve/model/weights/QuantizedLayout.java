package dev.pdserve.model.weights;

import dev.pdserve.model.config.ExpertGroup;
import dev.pdserve.model.config.LayerKind;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.StoredQuantization;
import dev.pdserve.model.quant.WeightComponent;
import dev.pdserve.model.quant.WeightQuantization;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Which canonical weights a {@link WeightQuantization} stores in low bits, in which {@link
 * QuantFormat} — the same rules the layer, head and expert graphs apply ({@link
 * WeightQuantization#format}) — and the names and shapes of their parts in a pre-quantized
 * checkpoint ({@link StoredQuantization}).
 */
public final class QuantizedLayout {
  private QuantizedLayout() {}

  /**
   * Every weight {@code q} quantizes, with its format, in {@link WeightNames#expected} order. With
   * tied embeddings the LM head is the embedding table ({@link WeightNames#EMBED}), gathered from
   * the same codes ({@link WeightQuantization#embeddingFormat} is the LM head's) or, with the
   * embeddings kept fp32, also needed in fp32 ({@link #needsFp32}); untied, the table is in the map
   * when {@code q} quantizes the embeddings.
   */
  public static Map<String, QuantFormat> formats(ModelConfig cfg, WeightQuantization q) {
    Map<String, QuantFormat> m = new LinkedHashMap<>();
    if (!q.isQuantized()) {
      return m;
    }
    String head = cfg.tieEmbeddings() ? WeightNames.EMBED : WeightNames.LM_HEAD;
    if (cfg.tieEmbeddings()) {
      put(m, head, q.format(cfg, -1, WeightComponent.LM_HEAD));
    } else {
      put(m, WeightNames.EMBED, q.embeddingFormat(cfg));
    }
    for (int l = 0; l < cfg.numLayers(); l++) {
      Optional<QuantFormat> attn = q.format(cfg, l, WeightComponent.ATTENTION);
      put(m, WeightNames.q(l), attn);
      put(m, WeightNames.k(l), attn);
      put(m, WeightNames.v(l), attn);
      put(m, WeightNames.o(l), attn);
      if (cfg.layerKind(l) == LayerKind.DENSE) {
        Optional<QuantFormat> f = q.format(cfg, l, WeightComponent.DENSE_MLP);
        for (String p : PROJECTIONS) {
          put(m, WeightNames.denseMlp(l, p), f);
        }
        continue;
      }
      Optional<QuantFormat> routed = q.format(cfg, l, WeightComponent.ROUTED_EXPERTS);
      for (int g : cfg.groupsInLayer(l)) {
        ExpertGroup eg = cfg.expertGroups().get(g);
        for (int e = 0; e < eg.numExperts(); e++) {
          for (String p : PROJECTIONS) {
            put(m, WeightNames.expert(cfg, l, g, e, p), routed);
          }
        }
      }
      if (cfg.numSharedExperts() > 0) {
        Optional<QuantFormat> f = q.format(cfg, l, WeightComponent.SHARED_EXPERTS);
        for (String p : PROJECTIONS) {
          put(m, WeightNames.sharedExpert(l, p), f);
        }
      }
    }
    if (!cfg.tieEmbeddings()) {
      put(m, head, q.format(cfg, -1, WeightComponent.LM_HEAD));
    }
    return m;
  }

  private static final String[] PROJECTIONS = {"gate_proj", "up_proj", "down_proj"};

  private static void put(Map<String, QuantFormat> m, String name, Optional<QuantFormat> f) {
    f.ifPresent(x -> m.put(name, x));
  }

  /**
   * Whether weight {@code name} is needed in fp32 when {@code formats} ({@link #formats} of {@code
   * q}) are quantized: every weight not quantized, and a tied embedding table quantized as the LM
   * head when {@code q} gathers the embeddings in fp32.
   */
  public static boolean needsFp32(
      String name, Map<String, QuantFormat> formats, WeightQuantization q) {
    return !formats.containsKey(name)
        || (name.equals(WeightNames.EMBED) && !q.quantizeEmbeddings());
  }

  /**
   * Whether a pre-quantized checkpoint may lack the stored parts of {@code base} although {@link
   * #formats} lists it: an untied embedding table written by format version 1, which kept it fp32
   * only (the engine quantizes it on load).
   */
  public static boolean mayBeStoredFp32(ModelConfig cfg, String base) {
    return base.equals(WeightNames.EMBED) && !cfg.tieEmbeddings();
  }

  public static String codesName(String base) {
    return base + StoredQuantization.CODES_SUFFIX;
  }

  public static String scalesName(String base) {
    return base + StoredQuantization.SCALES_SUFFIX;
  }

  public static String zeroPointsName(String base) {
    return base + StoredQuantization.ZERO_POINTS_SUFFIX;
  }

  /** {@code [n, blocks, blobBytes]}. */
  public static long[] codesShape(long n, long k, QuantFormat f) {
    return new long[] {n, f.blocks(k), f.blobBytes()};
  }

  /** {@code [n, blocks]}. */
  public static long[] scalesShape(long n, long k, QuantFormat f) {
    return new long[] {n, f.blocks(k)};
  }

  /** {@code [L]}: {@link #zeroPointBytes} rounded up to a multiple of 4. */
  public static long[] zeroPointsShape(long n, long k, QuantFormat f) {
    return new long[] {(zeroPointBytes(n, k, f) + 3) & ~3L};
  }

  /** Bytes of packed zero points: {@code n·⌈blocks·bits/8⌉}. */
  public static long zeroPointBytes(long n, long k, QuantFormat f) {
    return n * f.zeroPointBytesPerRow(k);
  }
}
