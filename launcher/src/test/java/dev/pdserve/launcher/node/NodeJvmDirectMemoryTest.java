package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A node JVM started as {@code pdserve local} starts it ({@link NodeJvm#nodeJavaCommand}) may hold
 * more direct memory (weights, ONNX Runtime tensors) than its heap: the JVM's default caps direct
 * buffers at {@code -Xmx}, and with the default 768m node heap the small preset's weights hit that
 * cap once an image prompt touched the vision experts — an OutOfMemoryError in the prefill loop. A
 * real child JVM with a 64 MiB heap allocates 256 MiB of direct buffers; the same command without
 * the direct-memory flag fails to.
 */
class NodeJvmDirectMemoryTest {
  private static final int MIB = 1 << 20;
  private static final int PROBE_MIB = 256;

  /** Allocates {@code args[0]} MiB of direct buffers, 16 MiB at a time, all kept; exit 0 or 3. */
  public static final class DirectMemoryProbe {
    public static void main(String[] args) {
      int mib = Integer.parseInt(args[0]);
      List<ByteBuffer> held = new ArrayList<>();
      try {
        for (int done = 0; done < mib; done += 16) {
          held.add(ByteBuffer.allocateDirect(16 * MIB));
        }
      } catch (OutOfMemoryError e) {
        System.out.println("direct OOM after " + held.size() * 16 + " MiB: " + e.getMessage());
        System.exit(3);
      }
      System.out.println("allocated " + held.size() * 16 + " MiB direct");
      System.exit(0);
    }
  }

  @Test
  void aNodeJvmHoldsMoreDirectMemoryThanItsHeap() throws Exception {
    List<String> cmd = probeCommand(NodeJvm.nodeJavaCommand("64m", "WARN"));
    assertTrue(
        cmd.stream().anyMatch(a -> a.startsWith("-XX:MaxDirectMemorySize=")),
        "no direct-memory flag in " + cmd);
    Result r = run(cmd);
    assertEquals(0, r.code, r.output);
    assertTrue(r.output.contains("allocated " + PROBE_MIB + " MiB direct"), r.output);
  }

  @Test
  void withoutTheFlagTheHeapCapsDirectMemory() throws Exception {
    List<String> cmd = probeCommand(NodeJvm.nodeJavaCommand("64m", "WARN"));
    cmd.removeIf(a -> a.startsWith("-XX:MaxDirectMemorySize="));
    Result r = run(cmd);
    assertEquals(3, r.code, r.output);
    assertTrue(r.output.contains("direct OOM"), r.output);
  }

  /** The node command with the probe instead of pdserve's main class. */
  private static List<String> probeCommand(List<String> node) {
    List<String> cmd = new ArrayList<>(node);
    assertEquals("dev.pdserve.launcher.Main", cmd.get(cmd.size() - 1), cmd.toString());
    cmd.set(cmd.size() - 1, DirectMemoryProbe.class.getName());
    cmd.add(Integer.toString(PROBE_MIB));
    return cmd;
  }

  private record Result(int code, String output) {}

  private static Result run(List<String> cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    byte[] out = p.getInputStream().readAllBytes();
    assertTrue(p.waitFor(120, TimeUnit.SECONDS), "probe JVM did not end");
    return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
  }
}
