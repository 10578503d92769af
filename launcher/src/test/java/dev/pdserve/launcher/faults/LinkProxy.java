package dev.pdserve.launcher.faults;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A loopback TCP proxy standing for one network link: it listens on {@code listen} (a node's
 * advertised address, e.g. 127.0.0.2:P) and relays every connection to {@code target} (where the
 * node really listens, 127.0.0.1:P). {@link #cut()} drops the link the way a dead cable or a
 * blackholing firewall does: nothing more is relayed on open connections in either direction (the
 * sockets stay open, so no RST tells either end), and new connections are accepted but never
 * relayed; {@link #heal()} lets bytes flow again.
 */
final class LinkProxy implements AutoCloseable {
  private final ServerSocket server;
  private final InetSocketAddress target;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private final Object gate = new Object();
  private volatile boolean cut;
  private volatile boolean closed;

  LinkProxy(InetSocketAddress listen, InetSocketAddress target) throws IOException {
    this.target = target;
    this.server = new ServerSocket();
    server.setReuseAddress(true);
    server.bind(listen, 100);
    Thread t = new Thread(this::acceptLoop, "link-proxy-" + listen.getPort());
    t.setDaemon(true);
    t.start();
  }

  void cut() {
    cut = true;
  }

  void heal() {
    synchronized (gate) {
      cut = false;
      gate.notifyAll();
    }
  }

  boolean isCut() {
    return cut;
  }

  private void acceptLoop() {
    while (!closed) {
      try {
        Socket in = server.accept();
        in.setTcpNoDelay(true);
        sockets.add(in);
        Thread t = new Thread(() -> connect(in), "link-proxy-conn-" + in.getPort());
        t.setDaemon(true);
        t.start();
      } catch (IOException e) {
        if (closed) {
          return;
        }
      }
    }
  }

  private void connect(Socket in) {
    try {
      awaitLink();
      Socket out = new Socket();
      out.setTcpNoDelay(true);
      out.connect(target, 5000);
      sockets.add(out);
      Thread back = new Thread(() -> relay(out, in), "link-proxy-back-" + in.getPort());
      back.setDaemon(true);
      back.start();
      relay(in, out);
    } catch (IOException | InterruptedException e) {
      closeQuietly(in);
    }
  }

  private void relay(Socket from, Socket to) {
    byte[] buf = new byte[16 * 1024];
    try {
      InputStream is = from.getInputStream();
      OutputStream os = to.getOutputStream();
      int n;
      while ((n = is.read(buf)) >= 0) {
        awaitLink();
        os.write(buf, 0, n);
        os.flush();
      }
    } catch (IOException | InterruptedException e) {
      // one side closed or reset
    } finally {
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  private void awaitLink() throws InterruptedException {
    synchronized (gate) {
      while (cut && !closed) {
        gate.wait(200);
      }
    }
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    closed = true;
    heal();
    try {
      server.close();
    } catch (IOException e) {
      // closing anyway
    }
    for (Socket s : sockets) {
      closeQuietly(s);
    }
  }
}
