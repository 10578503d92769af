package dev.pdserve.core.kv.flight;

import io.grpc.Detachable;
import io.grpc.HasByteBuffer;
import io.grpc.KnownLength;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One received message as gRPC's Netty transport hands it to a marshaller: its bytes spread over
 * several transport buffers, readable in place ({@link HasByteBuffer}: the front buffer, without
 * advancing), detachable from the call ({@link Detachable}) and of known length. {@link DirectPut}
 * copies rows straight out of such buffers; a row may span several of them.
 */
final class ReceiveBuffers extends InputStream implements KnownLength, HasByteBuffer, Detachable {
  private final List<byte[]> buffers;
  private int index; // the buffer being read
  private int pos; // within it

  private ReceiveBuffers(List<byte[]> buffers) {
    this.buffers = buffers;
  }

  /**
   * {@code message} cut at {@code cuts} (offsets into it, any order; out-of-range ones ignored).
   */
  static ReceiveBuffers split(byte[] message, int... cuts) {
    int[] sorted = cuts.clone();
    Arrays.sort(sorted);
    List<byte[]> parts = new ArrayList<>();
    int from = 0;
    for (int cut : sorted) {
      if (cut > from && cut < message.length) {
        parts.add(Arrays.copyOfRange(message, from, cut));
        from = cut;
      }
    }
    if (from < message.length) {
      parts.add(Arrays.copyOfRange(message, from, message.length));
    }
    return new ReceiveBuffers(parts);
  }

  @Override
  public int read() {
    if (!skipEmpty()) {
      return -1;
    }
    return buffers.get(index)[pos++] & 0xff;
  }

  @Override
  public int read(byte[] b, int off, int len) {
    if (len == 0) {
      return 0;
    }
    if (!skipEmpty()) {
      return -1;
    }
    byte[] buf = buffers.get(index);
    int k = Math.min(len, buf.length - pos);
    System.arraycopy(buf, pos, b, off, k);
    pos += k;
    return k;
  }

  @Override
  public long skip(long n) {
    long skipped = 0;
    while (skipped < n && skipEmpty()) {
      int k = (int) Math.min(n - skipped, buffers.get(index).length - pos);
      pos += k;
      skipped += k;
    }
    return skipped;
  }

  @Override
  public int available() {
    long left = 0;
    for (int i = index; i < buffers.size(); i++) {
      left += buffers.get(i).length - (i == index ? pos : 0);
    }
    return (int) Math.min(Integer.MAX_VALUE, left);
  }

  @Override
  public boolean byteBufferSupported() {
    return true;
  }

  /** The unread part of the front buffer, or null when every byte is read (as gRPC answers). */
  @Override
  public ByteBuffer getByteBuffer() {
    if (!skipEmpty()) {
      return null;
    }
    byte[] buf = buffers.get(index);
    return ByteBuffer.wrap(buf, pos, buf.length - pos).slice().asReadOnlyBuffer();
  }

  /** The unread bytes as a new stream; this one is left empty. */
  @Override
  public InputStream detach() {
    List<byte[]> rest = new ArrayList<>();
    if (skipEmpty()) {
      byte[] front = buffers.get(index);
      rest.add(Arrays.copyOfRange(front, pos, front.length));
      rest.addAll(buffers.subList(index + 1, buffers.size()));
    }
    index = buffers.size();
    pos = 0;
    return new ReceiveBuffers(rest);
  }

  private boolean skipEmpty() {
    while (index < buffers.size() && pos >= buffers.get(index).length) {
      index++;
      pos = 0;
    }
    return index < buffers.size();
  }
}
