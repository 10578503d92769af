package dev.pdserve.launcher.node;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.pdserve.launcher.node.Closer.Closed;
import dev.pdserve.launcher.node.Closer.Stage;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class CloserTest {
  private final List<String> calls = new ArrayList<>();

  private AutoCloseable resource(String name) {
    return () -> calls.add(name);
  }

  @Test
  void closesStageByStageAndWithinAStageInReverseOrderOfAdding() {
    Closer closer = new Closer();
    closer.add(Stage.MEMORY, "allocator", resource("allocator"));
    closer.add(Stage.CLUSTER, "member", resource("member"));
    closer.add(Stage.CLUSTER, "registry", resource("registry"));
    closer.add(Stage.ENDPOINTS, "grpc", resource("grpc"));
    closer.add(Stage.WORK, "prefill", resource("prefill"));
    closer.add(Stage.WORK, "decode", resource("decode"));
    closer.add(Stage.PRESENCE, "presence", resource("presence"));

    closer.close();

    List<String> order = List.of("presence", "decode", "prefill", "grpc", "registry", "member");
    List<String> expected = new ArrayList<>(order);
    expected.add("allocator");
    assertEquals(expected, calls, "close order");
    assertEquals(
        expected, closer.closed().stream().map(Closed::name).toList(), "what closed() reports");
    assertTrue(closer.stillOpen().isEmpty(), "still open: " + closer.stillOpen());
  }

  @Test
  void closesEachResourceOnceWhateverIsCalledAgain() {
    Closer closer = new Closer();
    AutoCloseable coordinator = resource("coordinator");
    closer.add(Stage.PRESENCE, "coordinator", coordinator);
    closer.add(Stage.PRESENCE, "presence", resource("presence"));
    closer.add(Stage.WORK, "engine", resource("engine"));
    closer.add(Stage.MEMORY, "allocator", resource("allocator"));

    closer.closeNow(coordinator);
    closer.closeNow(coordinator);
    closer.closeThrough(Stage.PRESENCE);
    assertEquals(List.of("coordinator", "presence"), calls, "closed early, then through PRESENCE");
    assertEquals(
        List.of(new Closed(Stage.WORK, "engine"), new Closed(Stage.MEMORY, "allocator")),
        closer.stillOpen());

    closer.close();
    closer.close();
    assertEquals(List.of("coordinator", "presence", "engine", "allocator"), calls);
  }

  @Test
  void aFailingCloseIsLoggedAndTheRestStillClose() {
    Closer closer = new Closer();
    closer.add(Stage.MEMORY, "allocator", resource("allocator"));
    closer.add(
        Stage.WORK,
        "broken",
        () -> {
          throw new IllegalStateException("boom");
        });
    closer.close();
    assertEquals(List.of("allocator"), calls);
    assertEquals(
        List.of(new Closed(Stage.WORK, "broken"), new Closed(Stage.MEMORY, "allocator")),
        closer.closed(),
        "a resource whose close failed counts as closed: it is not tried again");
  }
}
