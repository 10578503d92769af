package dev.pdserve.router.http;

import com.fasterxml.jackson.databind.JsonNode;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * {@link ApiExchange} over a Netty channel. The request is copied out of Netty's buffers when
 * created, so the handler thread owns it; responses are written with {@link Channel#writeAndFlush},
 * which Netty runs on the channel's event loop in call order.
 */
final class NettyExchange implements ApiExchange {
  private final HttpConnection connection;
  private final Channel channel;
  private final String method;
  private final String path;
  private final HttpHeaders headers;
  private final byte[] body;
  private final boolean keepAlive;
  private boolean complete; // guarded by this
  private boolean gone; // guarded by this
  private Runnable onGone; // guarded by this

  NettyExchange(HttpConnection connection, Channel channel, FullHttpRequest req) {
    this.connection = connection;
    this.channel = channel;
    this.method = req.method().name();
    this.path = new QueryStringDecoder(req.uri()).path();
    this.headers = req.headers().copy();
    this.body = ByteBufUtil.getBytes(req.content());
    this.keepAlive = HttpUtil.isKeepAlive(req);
  }

  @Override
  public String method() {
    return method;
  }

  @Override
  public String path() {
    return path;
  }

  @Override
  public String header(String name) {
    return headers.get(name);
  }

  @Override
  public byte[] body() {
    return body;
  }

  @Override
  public void sendJson(int status, Map<String, String> extra, JsonNode json) {
    byte[] bytes = OpenAiResponse.bytes(json);
    FullHttpResponse resp =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1,
            HttpResponseStatus.valueOf(status),
            Unpooled.wrappedBuffer(bytes));
    resp.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
    HttpUtil.setContentLength(resp, bytes.length);
    extra.forEach(resp.headers()::set);
    HttpUtil.setKeepAlive(resp, keepAlive);
    finish(channel.writeAndFlush(resp));
  }

  @Override
  public void startEvents(Map<String, String> extra) {
    HttpResponse resp = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
    resp.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
    resp.headers().set(HttpHeaderNames.CACHE_CONTROL, HttpHeaderValues.NO_CACHE);
    resp.headers().set("X-Accel-Buffering", "no"); // proxies: do not buffer the stream
    extra.forEach(resp.headers()::set);
    HttpUtil.setTransferEncodingChunked(resp, true);
    HttpUtil.setKeepAlive(resp, keepAlive);
    channel.write(resp);
  }

  @Override
  public void sendEvent(String data) {
    channel.writeAndFlush(
        new DefaultHttpContent(
            Unpooled.copiedBuffer("data: " + data + "\n\n", StandardCharsets.UTF_8)));
  }

  @Override
  public void endEvents() {
    finish(channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT));
  }

  private void finish(ChannelFuture written) {
    synchronized (this) {
      complete = true;
      onGone = null;
    }
    if (!keepAlive) {
      written.addListener(ChannelFutureListener.CLOSE);
    }
    channel.eventLoop().execute(() -> connection.responded(this));
  }

  @Override
  public void onClientGone(Runnable r) {
    boolean now;
    synchronized (this) {
      if (complete) {
        return;
      }
      now = gone;
      if (!now) {
        onGone = r;
      }
    }
    if (now) {
      r.run();
    }
  }

  /** The connection closed: cancels the request unless its response was complete. */
  void clientGone() {
    Runnable r;
    synchronized (this) {
      if (complete || gone) {
        return;
      }
      gone = true;
      r = onGone;
      onGone = null;
    }
    if (r != null) {
      r.run();
    }
  }

  boolean keepAlive() {
    return keepAlive;
  }
}
