package dev.pdserve.expert;

/**
 * A shard's answer for one dispatch.
 *
 * @param partial per row, {@code Σ (double)(w · y)} over the slots computed here, {@code [rows,
 *     hidden]}
 * @param expertsRun distinct experts run
 */
public record ExpertPartial(double[] partial, int expertsRun) {}
