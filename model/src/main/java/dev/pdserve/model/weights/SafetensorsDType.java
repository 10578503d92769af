package dev.pdserve.model.weights;

import java.util.Optional;

/** Element types of the safetensors format, by their header names, with their sizes in bytes. */
public enum SafetensorsDType {
  BOOL(1),
  U8(1),
  I8(1),
  F8_E5M2(1),
  F8_E4M3(1),
  I16(2),
  U16(2),
  F16(2),
  BF16(2),
  I32(4),
  U32(4),
  F32(4),
  I64(8),
  U64(8),
  F64(8);

  private final int bytes;

  SafetensorsDType(int bytes) {
    this.bytes = bytes;
  }

  public int bytes() {
    return bytes;
  }

  /** Whether {@link SafetensorsFile} can read this type as fp32 (F32, F16, BF16, F64). */
  public boolean readableAsFloat() {
    return this == F32 || this == F16 || this == BF16 || this == F64;
  }

  /** Whether {@link SafetensorsWriter} can encode fp32 values in this type (F32, F16, BF16). */
  public boolean writableFromFloat() {
    return this == F32 || this == F16 || this == BF16;
  }

  /** The type with this header name ("BF16"), or empty for a name the format does not define. */
  public static Optional<SafetensorsDType> byName(String name) {
    for (SafetensorsDType t : values()) {
      if (t.name().equals(name)) {
        return Optional.of(t);
      }
    }
    return Optional.empty();
  }
}
