package dev.pdserve.launcher;

import picocli.CommandLine.Command;

@Command(
    name = "pdserve",
    mixinStandardHelpOptions = true,
    version = "pdserve 0.1.0",
    description = "Disaggregated prefill/decode serving for ERNIE-4.5(-VL) MoE models.",
    subcommands = {
      GenerateCommand.class,
      ModelCommand.class,
      DemoCommand.class,
      RouterCommand.class,
      WorkerCommand.class,
      ExpertCommand.class,
      LocalCommand.class,
      ThroughputCommand.class,
      KvBenchCommand.class,
      SimulateCommand.class,
      BenchCommand.class,
      AdminCommand.class
    })
final class PdserveCommand implements Runnable {
  @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
