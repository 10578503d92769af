package dev.pdserve.model.onnx;

/**
 * The body of a control-flow node ({@code Loop}, {@code If}), made by {@link GraphOps#subgraph}:
 * every value it names starts with its own name and a slash, so none redefines a name of the graphs
 * around it, whose values it may read by name. It declares no weights: those belong to the main
 * graph ({@link GraphBuilder#weight}). Finish it with {@link #graph()} and pass that as the node's
 * graph attribute ({@link Attr#g}).
 */
public final class SubgraphBuilder extends GraphOps {
  SubgraphBuilder(String name) {
    super(name, name + "/");
  }
}
