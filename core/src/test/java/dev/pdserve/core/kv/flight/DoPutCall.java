package dev.pdserve.core.kv.flight;

import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.flight.impl.Flight;
import org.apache.arrow.flight.impl.FlightServiceGrpc;

/**
 * One DoPut on a service built by {@link DirectPut#service}, driven as gRPC's server drives it but
 * on the calling thread: each message is parsed by the method's own marshaller and handed to the
 * call's listener; once the call is closed no more messages arrive (the transport drops them).
 * Records what the server answered.
 */
final class DoPutCall {
  private final MethodDescriptor<Object, Flight.PutResult> method;
  private final ServerCall.Listener<Object> listener;
  private final Recorder call;
  private boolean halfClosed;

  /** What the server sent: results, then the status it closed the call with (once). */
  private static final class Recorder extends ServerCall<Object, Flight.PutResult> {
    private final MethodDescriptor<Object, Flight.PutResult> method;
    final List<Flight.PutResult> results = new ArrayList<>();
    final List<Status> closes = new ArrayList<>();

    Recorder(MethodDescriptor<Object, Flight.PutResult> method) {
      this.method = method;
    }

    @Override
    public void request(int numMessages) {}

    @Override
    public void sendHeaders(Metadata headers) {}

    @Override
    public void sendMessage(Flight.PutResult message) {
      results.add(message);
    }

    @Override
    public void close(Status status, Metadata trailers) {
      closes.add(status);
    }

    @Override
    public boolean isCancelled() {
      return false;
    }

    @Override
    public MethodDescriptor<Object, Flight.PutResult> getMethodDescriptor() {
      return method;
    }
  }

  @SuppressWarnings(
      "unchecked") // DoPut's definition in DirectPut's service: Frame in, PutResult out
  DoPutCall(ServerServiceDefinition service) {
    ServerMethodDefinition<Object, Flight.PutResult> def =
        (ServerMethodDefinition<Object, Flight.PutResult>)
            service.getMethod(FlightServiceGrpc.getDoPutMethod().getFullMethodName());
    this.method = def.getMethodDescriptor();
    this.call = new Recorder(method);
    ServerCallHandler<Object, Flight.PutResult> handler = def.getServerCallHandler();
    this.listener = handler.startCall(call, new Metadata());
    listener.onReady();
  }

  /** Delivers one received message; false (and nothing delivered) once the call is closed. */
  boolean send(InputStream message) {
    if (closed()) {
      return false;
    }
    listener.onMessage(method.parseRequest(message));
    return true;
  }

  /** The client's end of stream, unless the call is already closed. */
  void halfClose() {
    if (!closed() && !halfClosed) {
      halfClosed = true;
      listener.onHalfClose();
    }
    if (closed()) {
      listener.onComplete();
    }
  }

  boolean closed() {
    return !call.closes.isEmpty();
  }

  /** Every status the call was closed with (exactly one for a finished call). */
  List<Status> closes() {
    return call.closes;
  }

  List<Flight.PutResult> results() {
    return call.results;
  }
}
