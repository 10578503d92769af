package dev.pdserve.model.engine;

/** Every routed expert computed in this process. */
public final class LocalExperts implements ExpertBackend {
  private final ExpertCompute compute;

  public LocalExperts(ExpertCompute compute) {
    this.compute = compute;
  }

  @Override
  public float[] routed(RoutedBatch batch) {
    double[] acc = new double[batch.rows() * batch.hidden()];
    compute.accumulate(batch, acc);
    float[] out = new float[acc.length];
    for (int i = 0; i < acc.length; i++) {
      out[i] = (float) acc[i];
    }
    return out;
  }
}
