package dev.pdserve.router.http;

import dev.pdserve.core.NamedThreadFactory;
import dev.pdserve.core.auth.AccessControl;
import dev.pdserve.core.tls.TransportSecurity;
import dev.pdserve.model.engine.PromptRenderer;
import dev.pdserve.router.Router;
import dev.pdserve.router.images.ImageIntake;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.ssl.SslContext;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * The router's OpenAI-compatible HTTP API ({@code /v1/chat/completions}, {@code /v1/completions},
 * {@code /v1/models}) as a testable server object: constructed with its settings, then {@link
 * #start()}, {@link #port()}, {@link #close()}; port 0 binds any free port.
 *
 * <p>Netty HTTP/1.1 (already on the classpath for gRPC and Flight): a few event-loop threads do the
 * I/O, so an open event stream costs no thread and a client that disconnects is noticed at once
 * (its request is cancelled and its KV freed); a bounded pool of named handler threads parses
 * requests and tokenizes prompts off the event loop.
 */
public final class OpenAiHttpServer implements AutoCloseable {
  private static final Logger LOG = LogManager.getLogger(OpenAiHttpServer.class);

  private final HttpApiSettings settings;
  private final OpenAiApi api;
  private final EventLoopGroup boss;
  private final EventLoopGroup workers;
  private final ThreadPoolExecutor handlers;
  private final ChannelGroup channels =
      new DefaultChannelGroup("pdserve-http", GlobalEventExecutor.INSTANCE);
  private final SslContext tls; // null: plaintext HTTP
  private volatile Channel server;
  private volatile int port = -1;

  /**
   * @param renderer the router's prompt renderer (its tokenizer names tokens in log-probabilities;
   *     chat prompts without {@code max_tokens} are counted with it)
   */
  public OpenAiHttpServer(HttpApiSettings settings, Router router, PromptRenderer renderer) {
    this(
        settings,
        router,
        renderer,
        ImageIntake.defaults(),
        TransportSecurity.plaintext(),
        AccessControl.open());
  }

  /**
   * As above, every request checked by {@code access} first: without a valid {@code Authorization:
   * Bearer KEY} (when API keys are on) 401 with {@code WWW-Authenticate}; {@code /health} as the
   * health route.
   */
  public OpenAiHttpServer(
      HttpApiSettings settings, Router router, PromptRenderer renderer, AccessControl access) {
    this(settings, router, renderer, ImageIntake.defaults(), TransportSecurity.plaintext(), access);
  }

  /** As above, taking chat images in with {@code images}. */
  public OpenAiHttpServer(
      HttpApiSettings settings, Router router, PromptRenderer renderer, ImageIntake images) {
    this(settings, router, renderer, images, TransportSecurity.plaintext(), AccessControl.open());
  }

  /** As above, over HTTPS when {@code security} is TLS (the router's public API certificate). */
  public OpenAiHttpServer(
      HttpApiSettings settings,
      Router router,
      PromptRenderer renderer,
      TransportSecurity security) {
    this(settings, router, renderer, ImageIntake.defaults(), security, AccessControl.open());
  }

  /**
   * Chat images taken in with {@code images}, over HTTPS when {@code security} is TLS, every
   * request checked by {@code access} first.
   */
  public OpenAiHttpServer(
      HttpApiSettings settings,
      Router router,
      PromptRenderer renderer,
      ImageIntake images,
      TransportSecurity security,
      AccessControl access) {
    this.tls = security.httpServerContext().orElse(null);
    this.settings = settings;
    this.api =
        new OpenAiApi(
            router,
            renderer,
            settings.chatMaxTokensCap(),
            settings.servedModelName() != null ? settings.servedModelName() : router.model().name(),
            images,
            access);
    this.boss =
        new MultiThreadIoEventLoopGroup(
            1, new DefaultThreadFactory("http-accept", true), NioIoHandler.newFactory());
    this.workers =
        new MultiThreadIoEventLoopGroup(
            settings.ioThreads(),
            new DefaultThreadFactory("http-io", true),
            NioIoHandler.newFactory());
    this.handlers =
        new ThreadPoolExecutor(
            settings.handlerThreads(),
            settings.handlerThreads(),
            0,
            TimeUnit.MILLISECONDS,
            new ArrayBlockingQueue<>(Math.max(1, settings.handlerQueue())),
            new NamedThreadFactory("http-handler", true));
  }

  /** Binds and starts serving. */
  public OpenAiHttpServer start() throws IOException {
    ServerBootstrap b =
        new ServerBootstrap()
            .group(boss, workers)
            .channel(NioServerSocketChannel.class)
            .option(ChannelOption.SO_BACKLOG, 1024)
            .childOption(ChannelOption.TCP_NODELAY, true)
            .childHandler(
                new ChannelInitializer<SocketChannel>() {
                  @Override
                  protected void initChannel(SocketChannel ch) {
                    channels.add(ch);
                    if (tls != null) {
                      ch.pipeline().addLast("tls", tls.newHandler(ch.alloc()));
                    }
                    ch.pipeline()
                        .addLast("codec", new HttpServerCodec())
                        .addLast(
                            "body-limit", new HttpConnection.BodyLimit(settings.maxBodyBytes()))
                        .addLast("api", new HttpConnection(api, handlers));
                  }
                });
    try {
      server = b.bind(new InetSocketAddress(settings.host(), settings.port())).sync().channel();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while binding the HTTP server", e);
    } catch (Exception e) {
      close();
      throw new IOException(
          "cannot bind the HTTP API to "
              + settings.host()
              + ":"
              + settings.port()
              + ": "
              + e.getMessage(),
          e);
    }
    port = ((InetSocketAddress) server.localAddress()).getPort();
    LOG.info("OpenAI-compatible HTTP API listening on {}:{}", settings.host(), port);
    return this;
  }

  /** The bound port (the real one when configured with 0); -1 before {@link #start()}. */
  public int port() {
    return port;
  }

  /**
   * Stops accepting, closes every connection (which cancels the requests still streaming), and
   * stops the threads.
   */
  @Override
  public void close() {
    Channel s = server;
    if (s != null) {
      s.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    }
    channels.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    boss.shutdownGracefully(0, 2, TimeUnit.SECONDS);
    workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
    handlers.shutdownNow();
  }
}
