package dev.pdserve.model.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.pdserve.model.onnx.DType;
import dev.pdserve.model.onnx.GraphBuilder;
import dev.pdserve.model.onnx.OrtGraph;
import dev.pdserve.model.onnx.OrtRuntime;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * ONNX Runtime 1.24.2's {@code com.microsoft.GatherBlockQuantized} on the CPU provider, over {@link
 * BlockQuantizer}'s bytes (MatMulNBits' packing, reshaped to 2-D by {@link
 * GraphBuilder#quantGather}): the rows it gathers are, bit for bit, the rows of {@link
 * QuantizedMatrix#dequantize()} — the kernel computes {@code (float) (code − zeroPoint) · scale} in
 * fp32, as the Java dequantization does — for uint8 data with {@code bits} 8 and 4, with and
 * without zero points (the default zero point is {@code 2^(bits−1)}, MatMulNBits' own), blocks 16
 * to 256, a row width that is not a multiple of the block (gathered padded, then sliced), an odd
 * number of blocks (4-bit zero points, which 1.24.2 reads as one run over the table: {@link
 * GatherLayout#zeroPoints} repacks them), and repeated indices. 2-bit tables are refused by the
 * kernel ({@link #twoBitTablesAreRefused}).
 */
class GatherBlockQuantizedTest {
  static final OrtRuntime RT = OrtRuntime.shared();

  @ParameterizedTest(name = "{0}-bit, block {1}, zero points {2}, table [{3}, {4}]")
  @CsvSource({
    "8,16,false,40,80",
    "8,64,false,37,256",
    "8,128,false,20,200",
    "8,256,false,12,2560",
    "8,64,true,30,192",
    "4,16,true,40,80",
    "4,32,true,33,224",
    "4,64,true,29,200",
    "4,128,true,16,384",
    "4,256,true,10,512",
    "4,64,false,24,128",
    "4,32,false,19,100"
  })
  void gatheredRowsEqualTheDequantizedTableBitForBit(
      int bits, int block, boolean zp, int n, int k) {
    QuantFormat f = new QuantFormat(bits, block, zp);
    Random rnd = new Random(bits * 7919L + block * 31L + n + k);
    FloatBuffer w = OrtRuntime.directFloats(n * k);
    for (int i = 0; i < n * k; i++) {
      w.put((float) (0.5 * rnd.nextGaussian()) + (i % 11 == 0 ? 0.1f : 0f));
    }
    w.flip();
    QuantizedMatrix q = BlockQuantizer.quantize(w, n, k, f);
    float[] table = q.dequantize();
    long[] ids = new long[2 * n + 3];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = i < n ? n - 1 - i : rnd.nextInt(n); // every row, then repeats
    }
    GraphBuilder b = new GraphBuilder("gbq");
    String in = b.input("ids", DType.INT64, "t");
    b.output(b.quantGather(in, "table", n, k, f), "rows", DType.FLOAT, "t", (long) k);
    int blocks = f.blocks(k);
    Map<String, OnnxTensor> weights = new HashMap<>();
    weights.put(
        QuantNames.gatherCodes("table", f),
        RT.uint8Tensor(q.codes(), n, (long) blocks * f.blobBytes()));
    weights.put(QuantNames.gatherScales("table", f), RT.floatTensor(q.scales(), n, blocks));
    if (zp) {
      ByteBuffer perRow = ByteBuffer.allocateDirect(q.zeroPoints().length);
      perRow.put(q.zeroPoints()).flip();
      ByteBuffer forGather = GatherLayout.zeroPoints(perRow, n, k, f);
      assertEquals(GatherLayout.repacksZeroPoints(k, f), forGather != perRow, "repacked");
      byte[] zps = new byte[forGather.remaining()];
      forGather.duplicate().get(zps);
      weights.put(
          QuantNames.gatherZeroPoints("table", f),
          RT.uint8Tensor(zps, GatherLayout.zeroPointsShape(n, k, f)));
    }
    assertEquals(weights.keySet(), b.weights().keySet(), "weights the graph declares");
    try (OrtGraph g = OrtGraph.create("gbq", b.build(), b.weights().keySet(), weights, RT);
        OnnxTensor t = RT.longTensor(ids, ids.length);
        OrtSession.Result r = g.run(Map.of("ids", t))) {
      float[] got = OrtGraph.floats(r, 0);
      assertEquals((long) ids.length * k, got.length, "gathered values");
      int[] want = new int[got.length];
      int[] have = new int[got.length];
      for (int i = 0; i < ids.length; i++) {
        for (int c = 0; c < k; c++) {
          want[i * k + c] = Float.floatToRawIntBits(table[(int) ids[i] * k + c]);
          have[i * k + c] = Float.floatToRawIntBits(got[i * k + c]);
        }
      }
      assertArrayEquals(want, have, "GatherBlockQuantized vs a gather of the dequantized table");
    } finally {
      weights.values().forEach(OnnxTensor::close);
    }
  }

  /** 1.24.2's CPU kernel takes 4 and 8 bits only: a 2-bit table fails at session creation. */
  @Test
  void twoBitTablesAreRefused() {
    QuantFormat f = new QuantFormat(2, 16, false);
    assertFalse(GatherLayout.supports(f));
    GraphBuilder b = new GraphBuilder("gbq2");
    String in = b.input("ids", DType.INT64, "t");
    b.output(b.quantGather(in, "table", 4, 32, f), "rows", DType.FLOAT, "t", 32L);
    Map<String, OnnxTensor> weights = new HashMap<>();
    weights.put(QuantNames.gatherCodes("table", f), RT.uint8Tensor(new byte[16], 4, 4));
    weights.put(QuantNames.gatherScales("table", f), RT.floatTensor(new float[8], 4, 2));
    try {
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> OrtGraph.create("gbq2", b.build(), b.weights().keySet(), weights, RT).close());
      assertTrue(e.getMessage().contains("bits"), e.getMessage());
    } finally {
      weights.values().forEach(OnnxTensor::close);
    }
  }
}
