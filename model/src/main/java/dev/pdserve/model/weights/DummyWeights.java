package dev.pdserve.model.weights;

import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.quant.QuantFormat;
import dev.pdserve.model.quant.QuantizedMatrix;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Seeded random weights for a config: the same seed gives the same model, bit for bit, on every
 * machine (each tensor is drawn from its own SplitMix64 stream keyed by the seed and the tensor's
 * name). Scales keep activations well conditioned: linear weights ~ N(0, 1/fan_in), norms near 1,
 * embeddings ~ N(0, 0.5²), correction biases small against the 1/experts gate probabilities, the
 * vision side's biases ~ N(0, 0.02²). Each {@link #find} generates the tensor again (the same
 * values every time) and nothing is kept here, as with a checkpoint: callers keep what they load,
 * so a weight that is quantized, or handed to a session that owns it, leaves no fp32 copy behind.
 */
public final class DummyWeights implements WeightSource {
  private final ModelConfig cfg;
  private final long seed;
  private final Map<String, long[]> shapes;
  private final boolean lowBit;

  public DummyWeights(ModelConfig cfg, long seed) {
    this(cfg, seed, false);
  }

  private DummyWeights(ModelConfig cfg, long seed, boolean lowBit) {
    this.cfg = cfg;
    this.seed = seed;
    this.shapes = WeightNames.expected(cfg);
    this.lowBit = lowBit;
  }

  /**
   * Dummy weights whose quantized matrices are generated directly in their format ({@link
   * #quantized}): random codes, scales that give each weight the fp32 generator's standard
   * deviation, zero points at the middle of the code range — seconds for a full-size model, where
   * generating fp32 values and quantizing them takes ~0.5 µs a weight (an hour for 28B on 2 cores).
   * They are not the quantization of {@link #DummyWeights(ModelConfig, long)}'s weights, so they
   * have no fp32 counterpart to compare with. The embedding table in a quantized mode is such a
   * matrix too (gathered from its codes, which with tied embeddings are the LM head's; never
   * generated in fp32). Unquantized tensors (norms, gates, the vision tower, an fp32 embedding
   * table) are the same as there.
   */
  public static DummyWeights lowBit(ModelConfig cfg, long seed) {
    return new DummyWeights(cfg, seed, true);
  }

  /** Whether quantized matrices are generated directly ({@link #lowBit}). */
  public boolean isLowBit() {
    return lowBit;
  }

  /**
   * The matrix {@code name} generated directly in {@code f} from the seed (the same bits on every
   * machine and every call).
   */
  public QuantizedMatrix quantized(String name, QuantFormat f) {
    long[] shape = shapes.get(name);
    if (shape == null || shape.length != 2) {
      throw new IllegalArgumentException(
          "no matrix " + name + " in " + describe() + " to generate in " + f.tag());
    }
    int n = Math.toIntExact(shape[0]);
    int k = Math.toIntExact(shape[1]);
    int blocks = f.blocks(k);
    Gaussian rng = new Gaussian(seed ^ fnv(name) ^ fnv("low-bit " + f.tag()));
    byte[] codes = new byte[Math.multiplyExact(Math.multiplyExact(n, blocks), f.blobBytes())];
    for (int i = 0; i < codes.length; i += 8) {
      long r = rng.nextLong();
      for (int b = 0; b < 8 && i + b < codes.length; b++) {
        codes[i + b] = (byte) (r >>> (8 * b));
      }
    }
    // Uniform codes minus the zero point have variance (L² - 1) / 12 for L levels, plus 1/4 where
    // the zero point is the middle or one below it at random (a mean of ±1/2); the scales' jitter,
    // uniform in [0.75, 1.25), has a mean square of 1 + 1/48.
    double levels = 1 << f.bits();
    // the tables (embedding, LM head) as the fp32 generator draws them; linear weights 1/sqrt(k)
    double std =
        name.equals(WeightNames.LM_HEAD) || name.equals(WeightNames.EMBED)
            ? 0.5
            : 1.0 / Math.sqrt(k);
    double codeVariance = (levels * levels - 1) / 12.0 + (f.zeroPoints() ? 0.25 : 0.0);
    double unit = std / Math.sqrt(codeVariance * (1 + 1 / 48.0));
    float[] scales = new float[n * blocks];
    for (int i = 0; i < scales.length; i++) {
      scales[i] = (float) (unit * (0.75 + 0.5 * rng.uniform()));
    }
    byte[] zeroPoints = new byte[0];
    if (f.zeroPoints()) {
      int perRow = f.zeroPointBytesPerRow(k);
      zeroPoints = new byte[n * perRow];
      int mid = f.defaultZeroPoint();
      for (int r = 0; r < n; r++) {
        for (int blk = 0; blk < blocks; blk++) {
          // the middle, or one below it, so that codes minus zero points average 0
          int z = (rng.nextLong() & 1) == 0 ? mid : mid - 1;
          int idx = r * perRow + blk * f.bits() / 8;
          int shift = (blk * f.bits()) % 8;
          zeroPoints[idx] |= (byte) (z << shift);
        }
      }
    }
    return new QuantizedMatrix(n, k, f, codes, scales, zeroPoints);
  }

  @Override
  public Optional<FloatTensor> find(String name) {
    long[] shape = shapes.get(name);
    if (shape == null) {
      return Optional.empty();
    }
    return Optional.of(generate(name, shape));
  }

  @Override
  public Optional<long[]> shape(String name) {
    return Optional.ofNullable(shapes.get(name)).map(long[]::clone);
  }

  @Override
  public Set<String> names() {
    return shapes.keySet();
  }

  @Override
  public String describe() {
    return "dummy(" + cfg.name() + ", seed=" + seed + (lowBit ? ", low-bit" : "") + ")";
  }

  private FloatTensor generate(String name, long[] shape) {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    if (n > Integer.MAX_VALUE) {
      throw new IllegalStateException(
          "tensor " + name + " is too large for one buffer: " + n + " values");
    }
    FloatBuffer buf =
        ByteBuffer.allocateDirect((int) n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    Gaussian g = new Gaussian(seed ^ fnv(name));
    if (name.endsWith("layernorm.weight")
        || name.equals(WeightNames.FINAL_NORM)
        || VisionWeightNames.isNormScale(name)) {
      for (int i = 0; i < n; i++) {
        buf.put(i, (float) (1.0 + 0.1 * g.next()));
      }
    } else if (VisionWeightNames.isVision(name) && name.endsWith(".bias")) {
      for (int i = 0; i < n; i++) {
        buf.put(i, (float) (0.02 * g.next()));
      }
    } else if (name.endsWith("e_score_correction_bias")) {
      double scale = 0.2 / shape[shape.length - 1];
      for (int i = 0; i < n; i++) {
        buf.put(i, (float) (scale * g.next()));
      }
    } else if (name.equals(WeightNames.EMBED) || name.equals(WeightNames.LM_HEAD)) {
      for (int i = 0; i < n; i++) {
        buf.put(i, (float) (0.5 * g.next()));
      }
    } else {
      double std = 1.0 / Math.sqrt(shape[shape.length - 1]);
      for (int i = 0; i < n; i++) {
        buf.put(i, (float) (std * g.next()));
      }
    }
    return new FloatTensor(name, shape, buf);
  }

  private static long fnv(String s) {
    long h = 0xcbf29ce484222325L;
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      h ^= b & 0xff;
      h *= 0x100000001b3L;
    }
    return h;
  }

  /** Normal deviates from a SplitMix64 stream via Box–Muller: fully specified, so portable. */
  static final class Gaussian {
    private long state;
    private double spare;
    private boolean hasSpare;

    Gaussian(long seed) {
      this.state = seed;
    }

    long nextLong() {
      long z = (state += 0x9e3779b97f4a7c15L);
      z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
      z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
      return z ^ (z >>> 31);
    }

    double uniform() {
      return ((nextLong() >>> 11) + 0.5) * 0x1.0p-53; // in (0, 1)
    }

    double next() {
      if (hasSpare) {
        hasSpare = false;
        return spare;
      }
      double u1 = uniform();
      double u2 = uniform();
      double r = StrictMath.sqrt(-2.0 * StrictMath.log(u1));
      spare = r * StrictMath.sin(2 * Math.PI * u2);
      hasSpare = true;
      return r * StrictMath.cos(2 * Math.PI * u2);
    }
  }
}
