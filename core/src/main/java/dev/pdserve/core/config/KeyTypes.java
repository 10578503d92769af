package dev.pdserve.core.config;

import java.util.regex.Pattern;

/** Value types several key groups share. */
final class KeyTypes {
  static final Pattern NODE_ID_PATTERN = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  static final ValueType.Int PORT = new ValueType.Int(0, 65535);
  static final ValueType.ByteSize MESSAGE_SIZE =
      new ValueType.ByteSize(1024, Integer.MAX_VALUE, "1KiB..2GiB");
  static final ValueType.Bool BOOL = new ValueType.Bool();
  static final ValueType.RegularFile FILE = new ValueType.RegularFile();

  private KeyTypes() {}
}
