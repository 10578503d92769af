package dev.pdserve.decode;

/**
 * A sequence that left this node: where it continues and what it had generated here.
 *
 * @param target the reservation on the new node, holding the sequence's KV
 * @param generatedIds every token generated so far (the stream has sent each of them)
 * @param positionDelta the sequence's 3-D rotary delta ({@link JoinRequest#positionDelta()}): its
 *     new node decodes with it
 */
public record Migration(MigrationTarget target, int[] generatedIds, int positionDelta) {
  public Migration {
    generatedIds = generatedIds.clone();
  }

  public int tokensEmitted() {
    return generatedIds.length;
  }
}
