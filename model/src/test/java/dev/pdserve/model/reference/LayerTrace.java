package dev.pdserve.model.reference;

/**
 * Everything one decoder layer computed for T new tokens of one sequence, for comparison with other
 * implementations.
 *
 * @param out the layer's output rows {@code [T][hidden]}
 * @param attnResidual {@code h = x + Attn(RMSNorm(x))}
 * @param mlpInput {@code RMSNorm(h, post_attention_layernorm)}
 * @param expertIds {@code [T][k]} chosen experts within the token's group, highest score first;
 *     null rows for a dense layer
 * @param expertWeights {@code [T][k]} the matching routing weights; null rows for a dense layer
 * @param group per token, the expert group used (0 text, 1 vision), -1 for a dense layer
 * @param routingMargin per token, {@code score_k − score_{k+1}}; {@code +inf} for a dense layer
 * @param newK {@code [T][kvHeads*headDim]} post-RoPE keys appended to the cache
 * @param newV {@code [T][kvHeads*headDim]} values appended to the cache
 */
public record LayerTrace(
    double[][] out,
    double[][] attnResidual,
    double[][] mlpInput,
    int[][] expertIds,
    double[][] expertWeights,
    int[] group,
    double[] routingMargin,
    double[][] newK,
    double[][] newV) {}
