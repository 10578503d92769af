/**
 * KV transfer over Arrow Flight: the prefill node pushes a prompt's KV, layer by layer, into
 * blocks the decode node reserved.
 *
 * <h2>Wire format (v1)</h2>
 *
 * <ul>
 *   <li>One or more DoPut calls per transfer. The {@code FlightDescriptor} is a command holding the
 *       transfer id in UTF-8.
 *   <li>Schema: {@code layer: int32}, {@code block: int32} (index into the transfer's block table,
 *       i.e. first position / block size), {@code tokens: int32} (valid positions in that block,
 *       from its first slot), {@code kv: fixed_size_binary(layerBytes)} — one layer of one block,
 *       laid out {@code [K then V][kv_head][slot][head_dim]} in little-endian fp32, exactly as the
 *       receiver's {@link dev.pdserve.core.kv.KvBlockPool} stores it, so a row is one memcpy on
 *       either side. Slots past {@code tokens} are zero.
 *   <li>Schema metadata pins the layout: {@code pdserve.kv.format}, {@code .block_size}, {@code
 *       .layers}, {@code .kv_heads}, {@code .head_dim}, {@code .element_bytes}; a mismatch is
 *       INVALID_ARGUMENT.
 *   <li>A record batch is one layer, or a block range of one layer when the layer is larger than
 *       the sender's batch limit. Rows are idempotent: the receiver keeps, per (layer, block), the
 *       most positions it has received and skips a row that carries no more.
 *   <li>The server answers each DoPut with one {@code PutResult} whose app metadata is two
 *       little-endian int32s: layers complete, layers expected; then ends the call.
 * </ul>
 */
package dev.pdserve.core.kv.flight;
