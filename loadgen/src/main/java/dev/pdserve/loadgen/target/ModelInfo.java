package dev.pdserve.loadgen.target;

/** The served model as the target describes it; 0 = unknown. */
public record ModelInfo(String id, int maxContext, int vocabSize) {}
