package dev.pdserve.benchmarks;

import com.sun.management.OperatingSystemMXBean;
import dev.pdserve.core.config.TlsSettings;
import dev.pdserve.core.kv.KvBlockPool;
import dev.pdserve.core.kv.KvLayout;
import dev.pdserve.core.kv.PagedSequenceKv;
import dev.pdserve.core.kv.flight.IncomingTransfer;
import dev.pdserve.core.kv.flight.KvTransferClient;
import dev.pdserve.core.kv.flight.KvTransferServer;
import dev.pdserve.core.kv.flight.OutgoingTransfer;
import dev.pdserve.core.tls.CertificateAuthority;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.model.config.ModelConfig;
import dev.pdserve.model.config.ModelPresets;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.arrow.flight.Location;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/**
 * Moves one prompt's KV from a prefill pool into a decode pool, side by side in one JVM over
 * loopback: Arrow Flight DoPut ({@code dev.pdserve.core.kv.flight}, several transport settings) and
 * a plain TCP socket carrying the same bytes between the same pools. Prints MB/s (10^6 bytes/s) per
 * variant and the ratio to the socket. No assertions: a measurement, not a test.
 *
 * <pre>
 * bin/pdserve kv-bench [--preset P] [--tokens N] [--rounds N] [--warmup SECONDS] [--variants LETTERS] [--tls]
 * java --add-opens=java.base/java.nio=org.apache.arrow.memory.core,ALL-UNNAMED -cp ... \
 *   dev.pdserve.benchmarks.KvTransferBenchmark [preset] [tokens] [rounds] [warm-up seconds] [variant letters|-] [tls]
 * </pre>
 *
 * With {@code tls} every Flight variant also runs over mutual TLS ({@code grpc+tls}, both sides
 * holding a certificate of a throw-away cluster CA, generated at start with the generator of {@code
 * pdserve local --tls} and deleted at the end), measured in the same interleaved rounds; the table
 * gains each TLS variant's ratio to its plaintext twin.
 *
 * <p>Defaults: {@code ernie-4.5-vl-28b-a3b 2048 10 30} (2048 fp32 tokens = 224 MiB, the size of a
 * 4k-token prompt in bf16). Every variant is warmed up together, then measured in interleaved
 * rounds (each round runs each variant once, in a rotating order, after a GC) so that background
 * load hits all of them alike. CPU s/GB is the process's CPU time per GB moved.
 */
@SuppressWarnings("try") // variants close with checked exceptions
public final class KvTransferBenchmark {
  private static final OperatingSystemMXBean OS =
      (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

  private final KvLayout layout;
  private final int tokens;
  private final int reps;
  private final BufferAllocator root;
  private final KvBlockPool prefillPool;
  private final KvBlockPool decodePool;
  private final PagedSequenceKv prompt;
  private final long bytes;
  private TransportSecurity tlsServer = TransportSecurity.plaintext(); // the decode side
  private TransportSecurity tlsClient = TransportSecurity.plaintext(); // the prefill side
  private Path tlsDir; // the throw-away PKI, deleted on close

  private KvTransferBenchmark(ModelConfig cfg, int tokens, int reps) {
    this.layout = KvLayout.of(cfg);
    this.tokens = tokens;
    this.reps = reps;
    this.root = new RootAllocator();
    long poolBytes = (long) layout.blocksFor(tokens) * layout.blockBytes();
    this.prefillPool = new KvBlockPool(root, "prefill-pool", layout, poolBytes);
    this.decodePool = new KvBlockPool(root, "decode-pool", layout, poolBytes);
    this.prompt = new PagedSequenceKv(prefillPool);
    this.bytes = (long) layout.blocksFor(tokens) * layout.blockBytes();
    Random r = new Random(42);
    float[] k = new float[layout.kvHeads() * tokens * layout.headDim()];
    float[] v = new float[k.length];
    for (int l = 0; l < layout.layers(); l++) {
      for (int i = 0; i < k.length; i++) {
        k[i] = r.nextFloat();
        v[i] = r.nextFloat();
      }
      prompt.write(l, k, v, 0, tokens, tokens);
    }
    prompt.advance(tokens);
  }

  /** One way of moving the prompt; {@link #once} moves it and returns MB/s. */
  private interface Variant extends AutoCloseable {
    String name();

    double once(String id) throws Exception;
  }

  public static void main(String[] args) throws Exception {
    String preset = args.length > 0 ? args[0] : "ernie-4.5-vl-28b-a3b";
    int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 2048;
    int reps = args.length > 2 ? Integer.parseInt(args[2]) : 10;
    double warmupSeconds = args.length > 3 ? Double.parseDouble(args[3]) : 30;
    String only = args.length > 4 && !args[4].equals("-") ? args[4] : "";
    boolean tls = args.length > 5 && args[5].equalsIgnoreCase("tls");
    KvTransferBenchmark b = new KvTransferBenchmark(ModelPresets.get(preset), tokens, reps);
    try {
      if (tls) {
        b.generateClusterPki();
      }
      b.run(preset, warmupSeconds, only);
    } finally {
      b.close();
    }
  }

  /** A throw-away cluster CA and node certificate, as {@code pdserve local --tls} makes. */
  private void generateClusterPki() throws IOException {
    tlsDir = Files.createTempDirectory("pdserve-kv-bench-tls-");
    CertificateAuthority.LocalFiles f = CertificateAuthority.writeLocalCluster(tlsDir);
    TlsSettings node =
        new TlsSettings(
            true, Optional.of(f.cert()), Optional.of(f.key()), Optional.of(f.ca()), Duration.ZERO);
    tlsServer = TransportSecurity.cluster(node, "kv-bench-decode");
    tlsClient = TransportSecurity.cluster(node, "kv-bench-prefill");
  }

  private void run(String preset, double warmupSeconds, String only) throws Exception {
    System.out.printf(
        Locale.ROOT,
        "KV of %d tokens of %s in fp32 (%d layers x %d KV heads x %d): %.1f MiB in %d blocks of %d tokens; %d CPUs%n",
        tokens,
        preset,
        layout.layers(),
        layout.kvHeads(),
        layout.headDim(),
        bytes / 1048576.0,
        layout.blocksFor(tokens),
        layout.blockSize(),
        Runtime.getRuntime().availableProcessors());
    int layer = layout.blocksFor(tokens) * layout.layerBytes();
    int win = 16 << 20;
    KvTransferClient.Options stock =
        KvTransferClient.Options.DEFAULTS
            .withMaxBatchBytes(layer)
            .withZeroCopy(false)
            .withTimeout(Duration.ofMinutes(5))
            .withSendPath(KvTransferClient.SendPath.FLIGHT_CLIENT);
    KvTransferClient.Options flightZeroCopy = stock.withZeroCopy(true).withFlowControlWindow(win);
    KvTransferClient.Options direct = flightZeroCopy.withSendPath(KvTransferClient.SendPath.DIRECT);
    KvTransferServer.Options stockServer =
        new KvTransferServer.Options(KvTransferServer.ReceivePath.FLIGHT_STREAM, 0, 256 << 20);
    KvTransferServer.Options directServer =
        new KvTransferServer.Options(KvTransferServer.ReceivePath.DIRECT, win, 256 << 20);
    List<Variant> variants = new ArrayList<>();
    try {
      variants.add(new SocketVariant("socket: pool -> buffer -> TCP -> buffer -> pool", true));
      variants.add(new SocketVariant("socket: raw bytes, no pool copies", false));
      variants.add(
          new FlightVariant(
              "A Flight stock: FlightClient send (copying), FlightStream receive",
              stockServer,
              stock));
      variants.add(
          new FlightVariant(
              "B  A + zero-copy send, 16 MiB HTTP/2 windows",
              stockServer.withFlowControlWindow(win),
              flightZeroCopy));
      variants.add(
          new FlightVariant(
              "C  B + DIRECT receive (gRPC buffers -> pool)", directServer, flightZeroCopy));
      variants.add(
          new FlightVariant(
              "D  C + DIRECT send (pool -> socket, uncopied), 8 MiB batches",
              directServer,
              direct));
      KvTransferClient.Options mib = direct.withMaxBatchBytes(1 << 20);
      variants.add(new FlightVariant("E  D with 1 MiB batches", directServer, mib));
      KvTransferServer.Options defaultWindows = directServer.withFlowControlWindow(0);
      KvTransferClient.Options defaults = mib.withFlowControlWindow(0);
      variants.add(
          new FlightVariant(
              "F  E with gRPC's default windows: the defaults", defaultWindows, defaults));
      variants.add(
          new FlightVariant(
              "G  F with 256 KiB batches", defaultWindows, defaults.withMaxBatchBytes(256 << 10)));
      variants.add(
          new FlightVariant(
              "H  F with 4 MiB batches", defaultWindows, defaults.withMaxBatchBytes(4 << 20)));
      variants.add(
          new FlightVariant(
              "I  F with 2 streams on 2 connections", defaultWindows, defaults.withStreams(2, 2)));
      variants.add(
          new FlightVariant(
              "J  F with 4 streams on 1 connection", defaultWindows, defaults.withStreams(4, 1)));

      if (tlsServer.enabled()) { // each Flight variant again over mutual TLS, next to its twin
        List<Variant> both = new ArrayList<>();
        for (Variant v : variants) {
          both.add(v);
          if (v instanceof FlightVariant f) {
            both.add(f.overTls());
          }
        }
        variants.clear();
        variants.addAll(both);
      }
      if (!only.isEmpty()) { // keep the variants whose letters are listed; S: the sockets
        variants.removeIf(
            v -> {
              char letter = v.name().startsWith("socket") ? 'S' : v.name().charAt(0);
              boolean drop = only.indexOf(letter) < 0;
              if (drop) {
                try {
                  v.close();
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              }
              return drop;
            });
      }

      // Warm up every variant together (the JIT needs tens of seconds of gRPC traffic here), then
      // measure in interleaved rounds so that background load hits every variant alike.
      long until = System.nanoTime() + (long) (warmupSeconds * 1e9);
      int warm = 0;
      do {
        for (Variant v : variants) {
          v.once("warm-" + warm);
        }
        warm++;
      } while (System.nanoTime() < until);
      System.out.printf(
          Locale.ROOT,
          "warm-up: %d rounds in %.0f s; then %d measured rounds%n",
          warm,
          warmupSeconds,
          reps);
      double[][] mbs = new double[variants.size()][reps];
      double[][] cpu = new double[variants.size()][reps];
      for (int rep = 0; rep < reps; rep++) {
        for (int j = 0; j < variants.size(); j++) {
          int i =
              (j + rep)
                  % variants.size(); // rotate the order: no variant always follows the same one
          System.gc(); // no variant pays for another's garbage
          long c0 = OS.getProcessCpuTime();
          mbs[i][rep] = variants.get(i).once("rep-" + rep);
          cpu[i][rep] =
              (OS.getProcessCpuTime() - c0) / 1e9 / (bytes / 1e9); // CPU seconds per GB moved
        }
      }
      double socket = variants.get(0) instanceof SocketVariant ? median(mbs[0]) : Double.NaN;
      boolean tls = tlsServer.enabled();
      System.out.printf(
          Locale.ROOT,
          "%n%-68s %7s %6s %6s %7s %8s%s  %s%n",
          "variant (MB/s = 10^6 B/s)",
          "median",
          "min",
          "max",
          "/socket",
          "CPU s/GB",
          tls ? " /plain" : "",
          "MB/s per round");
      for (int i = 0; i < variants.size(); i++) {
        double[] m = mbs[i];
        String vsPlain = "";
        if (tls) {
          vsPlain = "       ";
          if (variants.get(i) instanceof FlightVariant f && f.tls && i > 0) {
            vsPlain = String.format(Locale.ROOT, " %6.2f", median(m) / median(mbs[i - 1]));
          }
        }
        System.out.printf(
            Locale.ROOT,
            "%-68s %7.0f %6.0f %6.0f %7.2f %8.2f%s %s%n",
            variants.get(i).name(),
            median(m),
            Arrays.stream(m).min().orElse(0),
            Arrays.stream(m).max().orElse(0),
            median(m) / socket,
            median(cpu[i]),
            vsPlain,
            fmt(m));
      }
      if (tls) {
        System.out.println(
            "/plain: median MB/s over mutual TLS (grpc+tls, cluster certificates both ways)"
                + " / the same variant in plaintext, same rounds");
      }
    } finally {
      for (Variant v : variants) {
        v.close();
      }
    }
  }

  private static double median(double[] x) {
    double[] s = x.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }

  private double mbPerSecond(long t0) {
    return bytes / ((System.nanoTime() - t0) / 1e9) / 1e6;
  }

  /** Flight DoPut with core's Flight client and server: prefill pool to decode pool. */
  private final class FlightVariant implements Variant {
    private final String name;
    private final KvTransferServer.Options serverOptions;
    private final KvTransferClient.Options clientOptions;
    private final boolean tls;
    private final KvTransferServer server;
    private final KvTransferClient client;
    private final Location at;

    FlightVariant(
        String name, KvTransferServer.Options serverOptions, KvTransferClient.Options clientOptions)
        throws IOException {
      this(name, serverOptions, clientOptions, false);
    }

    private FlightVariant(
        String name,
        KvTransferServer.Options serverOptions,
        KvTransferClient.Options clientOptions,
        boolean tls)
        throws IOException {
      this.name = name;
      this.serverOptions = serverOptions;
      this.clientOptions = clientOptions;
      this.tls = tls;
      this.server =
          new KvTransferServer(
                  root,
                  decodePool,
                  Location.forGrpcInsecure("127.0.0.1", 0),
                  serverOptions,
                  tls ? tlsServer : TransportSecurity.plaintext())
              .start();
      this.client =
          new KvTransferClient(
              root, layout, clientOptions, tls ? tlsClient : TransportSecurity.plaintext());
      this.at = server.location();
    }

    /** The same variant over mutual TLS; its name starts with the same letter. */
    FlightVariant overTls() throws IOException {
      return new FlightVariant(
          name.charAt(0) + "t " + name.charAt(0) + " over mutual TLS",
          serverOptions,
          clientOptions,
          true);
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public double once(String id) throws Exception {
      int[] blocks = decodePool.allocate(layout.blocksFor(tokens));
      try {
        long t0 = System.nanoTime();
        IncomingTransfer in = server.expect(id, blocks, tokens);
        try (OutgoingTransfer out = client.open(at, id)) {
          for (int l = 0; l < layout.layers(); l++) {
            out.sendLayer(l, prompt, tokens);
          }
          out.complete();
        }
        in.await(Duration.ofMinutes(5));
        return mbPerSecond(t0);
      } finally {
        decodePool.free(blocks);
      }
    }

    @Override
    public void close() throws Exception {
      client.close();
      server.close();
    }
  }

  /**
   * The same bytes over one plain loopback TCP connection. With {@code poolCopies} each layer is
   * gathered from the prefill pool into a buffer, written, read into a buffer and scattered into
   * the decode pool, the copies the Flight path also makes; without, only the bytes move.
   */
  private final class SocketVariant implements Variant {
    private final String name;
    private final boolean poolCopies;
    private final int rows = layout.blocksFor(tokens);
    private final long layerBytes = (long) rows * layout.layerBytes();
    private final ExecutorService receiver =
        Executors.newSingleThreadExecutor(r -> new Thread(r, "bench-socket-receiver"));
    private final ServerSocketChannel ss;
    private final SocketChannel out;
    private final SocketChannel in;
    private final ArrowBuf sendBuf;
    private final ArrowBuf recvBuf;

    SocketVariant(String name, boolean poolCopies) throws IOException {
      this.name = name;
      this.poolCopies = poolCopies;
      this.ss = ServerSocketChannel.open();
      ss.bind(new InetSocketAddress("127.0.0.1", 0));
      this.out = SocketChannel.open(ss.getLocalAddress());
      this.in = ss.accept();
      out.setOption(StandardSocketOptions.TCP_NODELAY, true);
      in.setOption(StandardSocketOptions.TCP_NODELAY, true);
      this.sendBuf = root.buffer(layerBytes);
      this.recvBuf = root.buffer(layerBytes);
    }

    @Override
    public String name() {
      return name;
    }

    @Override
    public double once(String id) throws Exception {
      int[] blocks = decodePool.allocate(rows);
      int[] source = prompt.blockTable();
      ByteBuffer sendView = sendBuf.nioBuffer(0, (int) layerBytes);
      ByteBuffer recvView = recvBuf.nioBuffer(0, (int) layerBytes);
      try {
        long t0 = System.nanoTime();
        Future<?> got =
            receiver.submit(
                () -> {
                  for (int l = 0; l < layout.layers(); l++) {
                    recvView.clear();
                    while (recvView.hasRemaining()) {
                      if (in.read(recvView) < 0) {
                        throw new IOException("sender closed");
                      }
                    }
                    if (poolCopies) {
                      for (int b = 0; b < rows; b++) {
                        decodePool.copyLayerIn(
                            blocks[b], l, recvBuf, (long) b * layout.layerBytes());
                      }
                    }
                  }
                  in.write(ByteBuffer.wrap(new byte[] {1})); // the acknowledgement
                  return null;
                });
        for (int l = 0; l < layout.layers(); l++) {
          if (poolCopies) {
            for (int b = 0; b < rows; b++) {
              prefillPool.copyLayerOut(source[b], l, sendBuf, (long) b * layout.layerBytes());
            }
          }
          sendView.clear();
          while (sendView.hasRemaining()) {
            out.write(sendView);
          }
        }
        ByteBuffer ack = ByteBuffer.allocate(1);
        while (ack.hasRemaining()) {
          if (out.read(ack) < 0) {
            throw new IOException("receiver closed");
          }
        }
        got.get();
        return mbPerSecond(t0);
      } finally {
        decodePool.free(blocks);
      }
    }

    @Override
    public void close() throws Exception {
      receiver.shutdownNow();
      in.close();
      out.close();
      ss.close();
      sendBuf.close();
      recvBuf.close();
    }
  }

  private static String fmt(double[] mbs) {
    StringBuilder s = new StringBuilder();
    for (double m : mbs) {
      s.append(String.format(Locale.ROOT, " %.0f", m));
    }
    return s.toString();
  }

  private void close() {
    tlsServer.close();
    tlsClient.close();
    if (tlsDir != null) {
      try (var files = Files.list(tlsDir)) {
        for (Path f : files.toList()) {
          Files.deleteIfExists(f);
        }
        Files.deleteIfExists(tlsDir);
      } catch (IOException e) {
        System.err.println("could not delete " + tlsDir + ": " + e);
      }
    }
    prompt.release();
    prefillPool.close();
    decodePool.close();
    if (root.getAllocatedMemory() != 0) {
      System.err.println(
          "LEAK: "
              + root.getAllocatedMemory()
              + " bytes still allocated\n"
              + root.toVerboseString());
    }
    root.close();
  }
}
