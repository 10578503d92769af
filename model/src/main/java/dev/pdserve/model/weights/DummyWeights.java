package dev.pdserve.model.weights;

import dev.pdserve.model.config.ModelConfig;
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

  public DummyWeights(ModelConfig cfg, long seed) {
    this.cfg = cfg;
    this.seed = seed;
    this.shapes = WeightNames.expected(cfg);
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
    return "dummy(" + cfg.name() + ", seed=" + seed + ")";
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

    private long nextLong() {
      long z = (state += 0x9e3779b97f4a7c15L);
      z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
      z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
      return z ^ (z >>> 31);
    }

    private double uniform() {
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
