package dev.pdserve.core.kv.flight;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.util.HashMap;
import java.util.Map;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;

/** The wire schema names the KV dtype; a receiver refuses another dtype or an older format. */
class KvWireTest {
  private final ModelConfig cfg = ModelPresets.get("tiny");

  private static Schema withMetadata(Schema s, String key, String value) {
    Map<String, String> m = new HashMap<>(s.getCustomMetadata());
    if (value == null) {
      m.remove(key);
    } else {
      m.put(key, value);
    }
    return new Schema(s.getFields(), m);
  }

  @Test
  void theSchemaOfALayoutFitsItAndNamesItsDtype() {
    for (KvDtype d : KvDtype.values()) {
      KvLayout layout = KvLayout.of(cfg, d);
      Schema s = KvWire.schema(layout);
      assertNull(KvWire.mismatch(s, layout), d + " schema refused by its own layout");
      assertEquals(d.configName(), s.getCustomMetadata().get(KvWire.DTYPE));
      assertEquals(
          Integer.toString(d.elementBytes()), s.getCustomMetadata().get(KvWire.ELEMENT_BYTES));
    }
  }

  @Test
  void anotherDtypeIsRefusedNamingBoth() {
    assertEquals(
        "KV dtype mismatch: this node stores fp16 KV, the sender sends bf16; set pdserve.kv.dtype"
            + " the same on every worker",
        KvWire.mismatch(
            KvWire.schema(KvLayout.of(cfg, KvDtype.BF16)), KvLayout.of(cfg, KvDtype.FP16)));
    assertEquals(
        "KV dtype mismatch: this node stores fp32 KV, the sender sends fp16; set pdserve.kv.dtype"
            + " the same on every worker",
        KvWire.mismatch(KvWire.schema(KvLayout.of(cfg, KvDtype.FP16)), KvLayout.of(cfg)));
  }

  @Test
  void aV1SenderIsRefusedAsAnOlderPdserve() {
    KvLayout layout = KvLayout.of(cfg);
    Schema v1 =
        withMetadata(
            withMetadata(KvWire.schema(layout), KvWire.FORMAT, KvWire.FORMAT_V1),
            KvWire.DTYPE,
            null);
    assertEquals(
        "KV wire format mismatch: this node reads '"
            + KvWire.FORMAT_V2
            + "', the sender sent '"
            + KvWire.FORMAT_V1
            + "' (an older pdserve); run the same pdserve version on every worker",
        KvWire.mismatch(v1, layout));
    Schema none = withMetadata(KvWire.schema(layout), KvWire.FORMAT, null);
    assertEquals(
        "KV wire format mismatch: this node reads '"
            + KvWire.FORMAT_V2
            + "', the sender sent no pdserve.kv.format; run the same pdserve version on every"
            + " worker",
        KvWire.mismatch(none, layout));
  }
}
