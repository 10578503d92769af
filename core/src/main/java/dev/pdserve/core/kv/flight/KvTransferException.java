package dev.pdserve.core.kv.flight;

import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import org.apache.arrow.flight.CallStatus;
import org.apache.arrow.flight.FlightRuntimeException;
import org.apache.arrow.flight.FlightStatusCode;
import org.apache.arrow.flight.grpc.StatusUtils;

/** A KV transfer failed; {@link #code()} is the Flight status it failed with (or maps to). */
public final class KvTransferException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final FlightStatusCode code;
  private final String description;

  public KvTransferException(FlightStatusCode code, String description) {
    this(code, description, null);
  }

  public KvTransferException(FlightStatusCode code, String description, Throwable cause) {
    super(code + ": " + description, cause);
    this.code = code;
    this.description = description;
  }

  /**
   * Wraps a failure of transfer {@code transferId}, keeping a Flight status and its description.
   */
  static KvTransferException of(String transferId, Throwable t) {
    if (t instanceof KvTransferException k) {
      return k;
    }
    if (t instanceof StatusRuntimeException || t instanceof StatusException) {
      t = StatusUtils.fromThrowable(t);
    }
    if (t instanceof FlightRuntimeException f) {
      String d = f.status().description();
      String prefix = "KV transfer '" + transferId + "'";
      return new KvTransferException(
          f.status().code(), d != null && d.startsWith(prefix) ? d : prefix + ": " + d, f);
    }
    return new KvTransferException(
        FlightStatusCode.INTERNAL, "KV transfer '" + transferId + "': " + t, t);
  }

  public FlightStatusCode code() {
    return code;
  }

  /** The message without the status code. */
  public String description() {
    return description;
  }

  /** This failure as the Flight status a peer receives. */
  FlightRuntimeException toFlight() {
    return new CallStatus(code).withDescription(description).toRuntimeException();
  }
}
