package dev.pdserve.loadgen.report;

import dev.pdserve.loadgen.RequestResult;
import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** One row per request (RFC 4180 quoting), times in milliseconds and seconds from the start. */
public final class CsvReport {
  public static final String HEADER =
      "index,request_id,worker,status,send_time_s,ttft_ms,tpot_ms,e2el_ms,itl_mean_ms,itl_max_ms,prompt_tokens,output_tokens,cached_tokens,finish_reason,error";

  private CsvReport() {}

  public static void write(Path file, List<RequestResult> results) throws IOException {
    try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
      w.write(HEADER);
      w.write('\n');
      for (RequestResult r : results) {
        double itlMean = 0;
        long itlMax = 0;
        for (long v : r.itlNanos()) {
          itlMean += v;
          itlMax = Math.max(itlMax, v);
        }
        itlMean = r.itlNanos().length == 0 ? 0 : itlMean / r.itlNanos().length;
        w.write(
            String.join(
                ",",
                Long.toString(r.index()),
                quote(r.requestId()),
                Integer.toString(r.worker()),
                quote(r.status()),
                String.format(Locale.ROOT, "%.6f", r.sendNanos() / 1e9),
                ms(r.ttftNanos()),
                ms(r.tpotNanos()),
                ms(r.e2eNanos()),
                r.itlNanos().length == 0 ? "" : String.format(Locale.ROOT, "%.3f", itlMean / 1e6),
                r.itlNanos().length == 0 ? "" : ms(itlMax),
                Integer.toString(r.promptTokens()),
                Integer.toString(r.outputTokens()),
                Integer.toString(r.cachedTokens()),
                quote(r.finishReason()),
                quote(r.error())));
        w.write('\n');
      }
    }
  }

  private static String ms(long nanos) {
    return nanos < 0 ? "" : String.format(Locale.ROOT, "%.3f", nanos / 1e6);
  }

  static String quote(String s) {
    if (s == null || s.isEmpty()) {
      return "";
    }
    if (s.indexOf(',') < 0 && s.indexOf('"') < 0 && s.indexOf('\n') < 0 && s.indexOf('\r') < 0) {
      return s;
    }
    return '"' + s.replace("\"", "\"\"") + '"';
  }
}
