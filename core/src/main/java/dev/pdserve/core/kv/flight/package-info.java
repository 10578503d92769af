/**
 * KV transfer over Arrow Flight: the prefill node pushes a prompt's KV, layer by layer, into blocks
 * the decode node reserved ({@link dev.pdserve.core.kv.flight.KvTransferServer#expect}).
 *
 * <h2>Wire format (v2)</h2>
 *
 * <ul>
 *   <li>One or more Flight DoPut calls per transfer (one per stream). The {@code FlightDescriptor}
 *       is a command holding the transfer id in UTF-8.
 *   <li>Schema: {@code layer: int32}, {@code block: int32} (index into the transfer's block table,
 *       i.e. first position / block size), {@code tokens: int32} (valid positions in that block,
 *       from its first slot), {@code kv: fixed_size_binary(layerBytes)} — one layer of one block,
 *       laid out {@code [K then V][kv_head][slot][head_dim]} in little-endian elements of the KV
 *       dtype (fp32, fp16 or bf16: 4 or 2 bytes), exactly as {@link
 *       dev.pdserve.core.kv.KvBlockPool} stores it, so a row is one contiguous copy on either side.
 *       Slots past {@code tokens} are zero. No nulls; senders may omit validity bitmaps
 *       (zero-length buffers).
 *   <li>Schema metadata pins the layout: {@code pdserve.kv.format} ({@code v2 dtype-le ...}),
 *       {@code .dtype} ({@code fp32}, {@code fp16} or {@code bf16}), {@code .block_size}, {@code
 *       .layers}, {@code .kv_heads}, {@code .head_dim}, {@code .element_bytes}; a mismatch is
 *       INVALID_ARGUMENT naming both sides (a v1 sender, which always sent fp32, is refused as an
 *       older pdserve; a sender of another dtype as a dtype mismatch).
 *   <li>A record batch holds whole blocks of one layer (up to the sender's batch size: 1 MiB by
 *       default, i.e. 16 blocks of an ERNIE-4.5-VL-28B layer). Rows are idempotent: the receiver
 *       keeps, per (layer, block), the most positions it has received and skips a row that carries
 *       no more.
 *   <li>The server answers each DoPut with one {@code PutResult} whose app metadata is two
 *       little-endian int32s, layers complete and layers expected, then ends the call.
 * </ul>
 *
 * <p>Each side has a portable path built on arrow-java's Flight classes ({@code FLIGHT_CLIENT},
 * {@code FLIGHT_STREAM}) and a DIRECT path that speaks the same protocol over gRPC without the
 * copies arrow-java 19 makes (the default); any combination interoperates.
 */
package dev.pdserve.core.kv.flight;
