package dev.pdserve.decode;

/**
 * A sequence that left this node: where it continues and what it had generated here.
 *
 * @param target the reservation on the new node, holding the sequence's KV
 * @param generatedIds every token generated so far (the stream has sent each of them)
 */
public record Migration(MigrationTarget target, int[] generatedIds) {
  public Migration {
    generatedIds = generatedIds.clone();
  }

  public int tokensEmitted() {
    return generatedIds.length;
  }
}
