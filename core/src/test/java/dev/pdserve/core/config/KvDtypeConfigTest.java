package dev.pdserve.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.pdserve.model.config.KvDtype;
import dev.pdserve.model.engine.Numerics;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** {@code pdserve.kv.dtype}: fp32 by default, fp16 or bf16 by name, anything else refused. */
class KvDtypeConfigTest {
  @Test
  void fp32UnlessSetAndTheNodeNumericsFollow() {
    NodeConfig plain = NodeConfigLoader.fromMap(Map.of("role", "decode"));
    assertEquals(KvDtype.FP32, plain.engine().kvDtype());
    assertEquals(Numerics.DEFAULT, plain.engine().numerics());
    for (String name : new String[] {"fp16", "BF16", " bf16 "}) {
      NodeConfig c = NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.dtype", name));
      assertEquals(KvDtype.parse(name), c.engine().kvDtype(), name);
      assertEquals(Numerics.kv(KvDtype.parse(name)), c.engine().numerics(), name);
    }
    NodeConfig env =
        NodeConfigLoader.load(
            Optional.empty(), Map.of("PDSERVE_KV_DTYPE", "fp16"), Map.of("role", "prefill"));
    assertEquals(KvDtype.FP16, env.engine().kvDtype());
  }

  @Test
  void anUnknownDtypeIsRefusedNamingTheKeyAndTheChoices() {
    NodeConfigException e =
        assertThrows(
            NodeConfigException.class,
            () -> NodeConfigLoader.fromMap(Map.of("role", "decode", "kv.dtype", "fp8")));
    assertEquals(
        List.of("pdserve.kv.dtype: must be fp32, fp16 or bf16, got 'fp8' (from flag)"),
        e.problems());
  }
}
