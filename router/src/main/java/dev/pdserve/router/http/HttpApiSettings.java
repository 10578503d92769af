package dev.pdserve.router.http;

import dev.pdserve.core.config.NetworkSettings;

/**
 * Settings of the OpenAI-compatible HTTP server.
 *
 * @param host interface to bind ({@code 127.0.0.1}, {@code 0.0.0.0})
 * @param port port, 0 = any free port
 * @param maxBodyBytes largest request body; larger ones get 413
 * @param ioThreads Netty event-loop threads (accept, read, write)
 * @param handlerThreads threads that parse requests and hand them to the router (tokenization runs
 *     there, off the event loop)
 * @param handlerQueue requests waiting for a handler thread; beyond it requests get 503
 * @param chatMaxTokensCap what a chat request without {@code max_tokens} may generate at most (it
 *     gets the rest of the context, as in vLLM, up to this)
 * @param servedModelName the model's name in {@code /v1/models} and responses, the one requests
 *     must name; null = the router's model config name
 */
public record HttpApiSettings(
    String host,
    int port,
    int maxBodyBytes,
    int ioThreads,
    int handlerThreads,
    int handlerQueue,
    int chatMaxTokensCap,
    String servedModelName) {
  public static final int DEFAULT_MAX_BODY_BYTES = NetworkSettings.DEFAULT_HTTP_MAX_BODY_BYTES;
  public static final int DEFAULT_CHAT_MAX_TOKENS_CAP = 4096;

  public HttpApiSettings {
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("HTTP port must be 0..65535, got " + port);
    }
    if (maxBodyBytes < 1024
        || ioThreads < 1
        || handlerThreads < 1
        || handlerQueue < 0
        || chatMaxTokensCap < 1) {
      throw new IllegalArgumentException(
          "HTTP settings need max body >= 1024 bytes, >= 1 io and handler threads, queue >= 0, chat max tokens cap >= 1");
    }
  }

  /** Defaults on {@code host:port}: 4 MiB bodies, 2 io threads, max(4, cores) handler threads. */
  public static HttpApiSettings on(String host, int port) {
    return new HttpApiSettings(
        host,
        port,
        DEFAULT_MAX_BODY_BYTES,
        2,
        Math.max(4, Runtime.getRuntime().availableProcessors()),
        1024,
        DEFAULT_CHAT_MAX_TOKENS_CAP,
        null);
  }

  public HttpApiSettings withMaxBodyBytes(int bytes) {
    return new HttpApiSettings(
        host,
        port,
        bytes,
        ioThreads,
        handlerThreads,
        handlerQueue,
        chatMaxTokensCap,
        servedModelName);
  }

  /** These settings serving the model as {@code name} (null: the model config's name). */
  public HttpApiSettings withServedModelName(String name) {
    return new HttpApiSettings(
        host, port, maxBodyBytes, ioThreads, handlerThreads, handlerQueue, chatMaxTokensCap, name);
  }
}
