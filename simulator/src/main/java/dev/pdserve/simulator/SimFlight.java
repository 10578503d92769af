package dev.pdserve.simulator;

/** The simulator's view of one request in flight. */
final class SimFlight {
  final SimRequest request;
  SimWorker prefillNode;
  SimWorker decodeNode;
  long blocks;
  int prefilled;
  double prefillComputeMs;
  double firstTokenMs = Double.NaN;
  double finishMs = Double.NaN;
  int generated;
  long context;
  String failure;

  SimFlight(SimRequest request) {
    this.request = request;
  }

  boolean done() {
    return failure != null || !Double.isNaN(finishMs);
  }
}
