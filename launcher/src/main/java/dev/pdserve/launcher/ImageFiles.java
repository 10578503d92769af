package dev.pdserve.launcher;

import dev.pdserve.model.vision.EncodedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;

/**
 * The files of {@code generate --image}: read whole (nothing is decoded here), with usage errors
 * that name the flag and the path, and the media type a file's first bytes show.
 */
final class ImageFiles {
  static final String OPTION = "--image";
  static final String PNG = "image/png";
  static final String JPEG = "image/jpeg";

  private ImageFiles() {}

  /** Each file's bytes, in order; a missing or unreadable file is a usage error of {@code cmd}. */
  static List<EncodedImage> read(CommandLine cmd, List<Path> paths) {
    List<EncodedImage> out = new ArrayList<>(paths.size());
    for (Path p : paths) {
      try {
        if (Files.isDirectory(p)) {
          throw new CommandLine.ParameterException(
              cmd, OPTION + " " + p + ": is a directory, not an image file");
        }
        out.add(new EncodedImage(Files.readAllBytes(p)));
      } catch (NoSuchFileException e) {
        throw new CommandLine.ParameterException(cmd, OPTION + " " + p + ": no such file");
      } catch (IOException e) {
        throw new CommandLine.ParameterException(
            cmd, OPTION + " " + p + ": cannot read it (" + e + ")");
      }
    }
    return out;
  }

  /**
   * {@code image/png} or {@code image/jpeg} from the file's signature, or "" for anything else (the
   * router then says what the bytes are not).
   */
  static String mediaType(byte[] b) {
    if (b.length >= 8
        && (b[0] & 0xff) == 0x89
        && b[1] == 'P'
        && b[2] == 'N'
        && b[3] == 'G'
        && b[4] == '\r'
        && b[5] == '\n'
        && b[6] == 0x1a
        && b[7] == '\n') {
      return PNG;
    }
    if (b.length >= 3 && (b[0] & 0xff) == 0xff && (b[1] & 0xff) == 0xd8 && (b[2] & 0xff) == 0xff) {
      return JPEG;
    }
    return "";
  }
}
