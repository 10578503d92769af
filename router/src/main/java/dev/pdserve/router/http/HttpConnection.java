package dev.pdserve.router.http;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayDeque;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;

/**
 * One HTTP/1.1 connection: hands each whole request to {@link OpenAiApi} on a handler thread, one
 * at a time (pipelined requests wait their turn, so responses keep their order), and cancels the
 * running request when the connection closes. Fields are confined to the channel's event loop.
 */
final class HttpConnection extends ChannelInboundHandlerAdapter {
  private static final Logger LOG = LogManager.getLogger(HttpConnection.class);

  private final OpenAiApi api;
  private final Executor handlers;
  private final ArrayDeque<FullHttpRequest> waiting = new ArrayDeque<>();
  private ChannelHandlerContext ctx;
  private NettyExchange current;

  HttpConnection(OpenAiApi api, Executor handlers) {
    this.api = api;
    this.handlers = handlers;
  }

  @Override
  public void handlerAdded(ChannelHandlerContext ctx) {
    this.ctx = ctx;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof FullHttpRequest req)) {
      ReferenceCountUtil.release(msg);
      return;
    }
    if (current != null) {
      waiting.add(req);
    } else {
      begin(req);
    }
  }

  private void begin(FullHttpRequest req) {
    try {
      if (req.decoderResult().isFailure()) {
        String why = String.valueOf(req.decoderResult().cause());
        sendAndClose(
            400,
            new ApiError(
                400, ApiError.INVALID_REQUEST, "malformed HTTP request: " + why, null, null, 0));
        return;
      }
      NettyExchange ex = new NettyExchange(this, ctx.channel(), req);
      current = ex;
      try {
        handlers.execute(() -> api.handle(ex));
      } catch (RejectedExecutionException e) {
        OpenAiApi.sendError(
            ex,
            new ApiError(
                503,
                "service_unavailable_error",
                "the HTTP server has too many requests waiting for a handler; retry shortly",
                null,
                "too_many_requests",
                1));
      }
    } finally {
      req.release();
    }
  }

  /** The response of {@code ex} is written: the next pipelined request may start. */
  void responded(NettyExchange ex) {
    if (current != ex) {
      return;
    }
    current = null;
    if (!ex.keepAlive()) {
      releaseWaiting();
      return;
    }
    FullHttpRequest next = waiting.poll();
    if (next != null) {
      begin(next);
    }
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    NettyExchange ex = current;
    current = null;
    releaseWaiting();
    if (ex != null) {
      ex.clientGone();
    }
    ctx.fireChannelInactive();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    LOG.debug("HTTP connection {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
    ctx.close();
  }

  private void releaseWaiting() {
    FullHttpRequest r;
    while ((r = waiting.poll()) != null) {
      r.release();
    }
  }

  private void sendAndClose(int status, ApiError err) {
    ctx.writeAndFlush(jsonResponse(status, err, false)).addListener(ChannelFutureListener.CLOSE);
  }

  static FullHttpResponse jsonResponse(int status, ApiError err, boolean keepAlive) {
    byte[] bytes = OpenAiResponse.bytes(err.body());
    FullHttpResponse resp =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1,
            HttpResponseStatus.valueOf(status),
            Unpooled.wrappedBuffer(bytes));
    resp.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
    HttpUtil.setContentLength(resp, bytes.length);
    HttpUtil.setKeepAlive(resp, keepAlive);
    return resp;
  }

  /**
   * Aggregates a request up to the body limit; a larger one gets 413 in OpenAI's error shape. The
   * connection stays open (the rest of the body is read and dropped) when the client keeps
   * connections alive and has started sending, so it reads the 413 rather than a reset.
   */
  static final class BodyLimit extends HttpObjectAggregator {
    private final int maxBytes;

    BodyLimit(int maxBytes) {
      super(maxBytes);
      this.maxBytes = maxBytes;
    }

    /**
     * A request that announces an oversized body with {@code Expect: 100-continue} (curl does for
     * bodies over 1 MiB) gets the same 413 with its message, not Netty's empty one; the body it
     * then does not send is not waited for.
     */
    @Override
    protected Object newContinueResponse(
        HttpMessage start, int maxContentLength, ChannelPipeline pipeline) {
      Object answer = super.newContinueResponse(start, maxContentLength, pipeline);
      if (answer instanceof FullHttpResponse r
          && r.status().code() == HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE.code()) {
        ReferenceCountUtil.release(r);
        return jsonResponse(413, tooLarge(), HttpUtil.isKeepAlive(start));
      }
      return answer;
    }

    private ApiError tooLarge() {
      return new ApiError(
          413,
          ApiError.INVALID_REQUEST,
          "the request body is larger than this server's limit of "
              + maxBytes
              + " bytes (pdserve.http.max-body-bytes)",
          null,
          "request_too_large",
          0);
    }

    @Override
    protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized)
        throws Exception {
      if (!(oversized instanceof HttpRequest req)) {
        super.handleOversizedMessage(ctx, oversized);
        return;
      }
      ApiError err = tooLarge();
      boolean close =
          oversized instanceof FullHttpRequest
              || (!HttpUtil.is100ContinueExpected(req) && !HttpUtil.isKeepAlive(req));
      var written = ctx.writeAndFlush(jsonResponse(413, err, !close));
      if (close) {
        written.addListener(ChannelFutureListener.CLOSE);
      } else {
        written.addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
      }
    }
  }
}
