package dev.pdserve.launcher;

import dev.pdserve.model.config.KvDtype;
import picocli.CommandLine;

/**
 * {@code --kv-dtype fp32|fp16|bf16} (key {@code pdserve.kv.dtype}) on the commands that run the
 * model: picocli refuses any other value naming the flag and the choices.
 */
final class KvDtypeOption implements CommandLine.ITypeConverter<KvDtype> {
  /** The option's help text. */
  static final String DESCRIPTION =
      "KV cache element type: fp32, fp16 or bf16 (keys and values are rounded to it when"
          + " computed; fp16/bf16 halve the KV bytes in the pool and on the wire).";

  @Override
  public KvDtype convert(String value) {
    try {
      return KvDtype.parse(value);
    } catch (IllegalArgumentException e) {
      throw new CommandLine.TypeConversionException(e.getMessage());
    }
  }
}
