package dev.pdserve.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.common.testing.FakeTicker;
import dev.pdserve.core.kv.InMemoryKvTransfer;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvEndpoint;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.model.engine.ExpertBackend;
import dev.pdserve.model.sampling.SamplingParams;
import dev.pdserve.model.vision.EncoderCache;
import org.apache.arrow.memory.BufferAllocator;

/**
 * A decode node for engine tests: its own KV pool of {@value #BLOCKS} blocks, an {@link
 * InMemoryKvTransfer} into that pool (reached at {@link #endpoint()}), a {@link FakeTicker} the
 * test moves, and a {@link DecodeEngine} over them, which encodes images with the reference
 * engine's vision encoder through its own {@link #encoderCache}. Closing it checks every block came
 * back.
 */
final class TestDecodeNode implements AutoCloseable {
  static final int BLOCKS = 64;

  final String name;
  final KvBlockPool pool;
  final InMemoryKvTransfer transfer;
  final FakeTicker ticker = new FakeTicker();
  final EncoderCache encoderCache = new EncoderCache(1 << 20);
  final DecodeEngine engine;

  TestDecodeNode(
      String name,
      BufferAllocator allocator,
      TinyModel model,
      ExpertBackend experts,
      DecodeOptions options) {
    this.name = name;
    KvLayout layout = KvLayout.of(model.reference.config());
    this.pool = new KvBlockPool(allocator, name + "-kv", layout, BLOCKS * layout.blockBytes());
    this.transfer = new InMemoryKvTransfer(pool, new KvEndpoint(name, 1));
    this.engine =
        new DecodeEngine(
            new DecodeResources(
                model.reference.runner(),
                experts,
                pool,
                transfer,
                model.reference.tokenizer(),
                model.reference.visionEncoder().orElseThrow(),
                encoderCache),
            options,
            DecodeMetrics.NONE,
            ticker);
  }

  KvEndpoint endpoint() {
    return transfer.endpoint();
  }

  /**
   * A greedy request for exactly {@code maxTokens} tokens as a router and a prefill node make it:
   * reserved here, prefilled in {@code prefillPool} with its KV pushed here, then joined.
   */
  RecordingSink joinPrefilledElsewhere(
      TinyModel model, KvBlockPool prefillPool, String requestId, int[] prompt, int maxTokens) {
    Reservation r = engine.reserve(requestId, prompt.length, maxTokens);
    SamplingParams params = TinyModel.greedy(maxTokens);
    int first =
        model.prefillAndPush(prompt, params, prefillPool, transfer, endpoint(), r.transferId());
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled(requestId, r.transferId(), prompt, first, 0, params, 1, 0), sink);
    return sink;
  }

  /**
   * A greedy request for a prompt with images, prefilled in {@code prefillPool} with its KV pushed
   * here, then joined with its prompt's position delta.
   */
  RecordingSink joinPrefilledElsewhere(
      TinyModel model,
      KvBlockPool prefillPool,
      String requestId,
      ImagePrompt prompt,
      int maxTokens) {
    Reservation r = engine.reserve(requestId, prompt.ids().length, maxTokens);
    SamplingParams params = TinyModel.greedy(maxTokens);
    int first =
        model.prefillAndPush(prompt, params, prefillPool, transfer, endpoint(), r.transferId());
    RecordingSink sink = new RecordingSink();
    engine.join(
        JoinRequest.prefilled(requestId, r.transferId(), prompt.ids(), first, 0, params, 1, 0)
            .withPositionDelta(prompt.positionDelta()),
        sink);
    return sink;
  }

  @Override
  public void close() {
    engine.close();
    try {
      assertEquals(
          pool.totalBlocks(),
          pool.freeBlocks(),
          "every KV block of " + name + " must be free after the test");
    } finally {
      pool.close();
    }
  }
}
