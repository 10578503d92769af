package dev.pdserve.launcher.node;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/** How node JVMs are started from this one: the java command, its flags, free loopback ports. */
public final class NodeJvm {
  private NodeJvm() {}

  /**
   * This JVM's executable and the flags a node needs from it (module opens, the logging manager,
   * Hazelcast properties), to which callers add their own flags and the main class.
   */
  public static List<String> javaWithThisJvmsModuleFlags() {
    List<String> cmd = new ArrayList<>();
    cmd.add(ProcessHandle.current().info().command().orElse("java"));
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-")
          || a.startsWith("-Djava.util.logging.manager")
          || a.startsWith("-Dhazelcast.")) {
        cmd.add(a);
      }
    }
    return cmd;
  }

  /**
   * The command that starts a node JVM like this one ({@code pdserve} CLI arguments follow): the
   * module flags this JVM got, {@code -Xmx heap}, direct memory up to the machine's (weights live
   * there, not in the heap), the flags that suit many JVMs on one machine.
   */
  public static List<String> nodeJavaCommand(String heap, String logLevel) {
    List<String> cmd = javaWithThisJvmsModuleFlags();
    cmd.add("-Xmx" + heap);
    // Many JVMs on one machine: C2 compilation in every process competes with serving for the
    // cores for minutes; the C1 tier alone gave twice the throughput on 2 cores
    // (docs/PERFORMANCE.md).
    // PDSERVE_NODE_JAVA_OPTS adds flags (e.g. -XX:TieredStopAtLevel=4 to get C2 back).
    cmd.add("-XX:TieredStopAtLevel=1");
    // Weights and ONNX Runtime tensors are direct buffers, outside the heap; by default the JVM
    // caps them at -Xmx, which the small preset's weights alone exceed once an image prompt
    // touches the vision experts (OutOfMemoryError in the prefill loop). What bounds a node's
    // memory is its start-up check (NodeMemory: pdserve.node.memory-limit or the machine's
    // memory), so direct memory may use the machine's. PDSERVE_NODE_JAVA_OPTS can lower it.
    long physical = NodeMemory.physicalBytes();
    if (physical > 0) {
      cmd.add("-XX:MaxDirectMemorySize=" + physical);
    }
    String extra = System.getenv("PDSERVE_NODE_JAVA_OPTS");
    if (extra != null && !extra.isBlank()) {
      cmd.addAll(List.of(extra.trim().split("\\s+")));
    }
    cmd.add("-XX:+UseSerialGC");
    cmd.add("-Dpdserve.log.level=" + logLevel);
    cmd.add("-Dhazelcast.logging.type=log4j2");
    cmd.add("-Dhazelcast.phone.home.enabled=false");
    cmd.add("-cp");
    cmd.add(System.getProperty("java.class.path"));
    cmd.add("dev.pdserve.launcher.Main");
    return cmd;
  }

  /** {@code n} loopback ports free a moment ago (held together, so all differ). */
  public static int[] freeLoopbackPorts(int n) throws IOException {
    int[] ports = new int[n];
    List<ServerSocket> held = new ArrayList<>();
    try {
      for (int i = 0; i < n; i++) {
        ServerSocket s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        held.add(s);
        ports[i] = s.getLocalPort();
      }
    } finally {
      for (ServerSocket s : held) {
        s.close();
      }
    }
    return ports;
  }
}
