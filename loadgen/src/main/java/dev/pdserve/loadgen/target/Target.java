package dev.pdserve.loadgen.target;

/** Where requests go: the router's gRPC API or an OpenAI-compatible HTTP endpoint. */
public interface Target extends AutoCloseable {
  /**
   * The model to use: {@code requested} if given, else the first the server lists. Fails with an
   * actionable message when the server cannot be reached.
   */
  ModelInfo model(String requested);

  /** Sends the timer's request asynchronously; the timer is finished exactly once. */
  void send(RequestTimer timer, RequestOptions options);

  /** Human name, e.g. {@code grpc 127.0.0.1:50051}. */
  String describe();

  @Override
  void close();
}
