package dev.pdserve.expert;

/**
 * A dispatch asked this shard for an expert it does not host: the caller's placement disagrees with
 * the shard's range (a stale or wrong placement version).
 */
public final class ExpertNotHostedException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int layer;
  private final int group;
  private final int expert;

  public ExpertNotHostedException(String message, int layer, int group, int expert) {
    super(message);
    this.layer = layer;
    this.group = group;
    this.expert = expert;
  }

  public int layer() {
    return layer;
  }

  public int group() {
    return group;
  }

  public int expert() {
    return expert;
  }
}
