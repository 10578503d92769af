package dev.pdserve.launcher;

import dev.pdserve.benchmarks.KvTransferBenchmark;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The KV transfer benchmark: Arrow Flight push vs a raw loopback socket moving the same bytes, in
 * one run.
 */
@Command(
    name = "kv-bench",
    mixinStandardHelpOptions = true,
    description =
        "Measure KV transfer over Arrow Flight against a raw loopback socket sending the same bytes, side by side.")
final class KvBenchCommand implements Callable<Integer> {
  @Option(
      names = "--preset",
      defaultValue = "ernie-4.5-vl-28b-a3b",
      description = "Model shape of the KV. Default: ${DEFAULT-VALUE}.")
  String preset;

  @Option(
      names = "--tokens",
      defaultValue = "2048",
      description = "Prompt tokens per transfer (2048 fp32 = 224 MiB). Default: ${DEFAULT-VALUE}.")
  int tokens;

  @Option(
      names = "--rounds",
      defaultValue = "20",
      description = "Measured rounds (median reported). Default: ${DEFAULT-VALUE}.")
  int rounds;

  @Option(
      names = "--warmup",
      defaultValue = "40",
      description =
          "Warm-up seconds (the JIT needs tens of seconds of traffic). Default: ${DEFAULT-VALUE}.")
  int warmup;

  @Option(
      names = "--variants",
      description =
          "Variant letters to run (S = socket; see docs/kv-transfer.md); default: the standard set.")
  String variants;

  @Option(
      names = "--tls",
      description =
          "Also run every Flight variant over mutual TLS (a throw-away cluster CA and certificate"
              + " generated at start, as pdserve local --tls does), side by side in the same"
              + " rounds, and report TLS / plaintext.")
  boolean tls;

  @Override
  public Integer call() throws Exception {
    List<String> args =
        new ArrayList<>(
            List.of(
                preset,
                Integer.toString(tokens),
                Integer.toString(rounds),
                Integer.toString(warmup)));
    args.add(variants != null ? variants : "-");
    if (tls) {
      args.add("tls");
    }
    KvTransferBenchmark.main(args.toArray(String[]::new));
    return 0;
  }
}
