package dev.pdserve.core.config;

import java.time.Duration;

/**
 * Keys of the router: routing weights, migration, admission and image intake. Part of {@link
 * ConfigKeys}, where every key is listed.
 */
public interface RouterKeys {
  ConfigKeyGroup GROUP = new ConfigKeyGroup();

  ConfigKey<Integer> ROUTER_LOCAL_PREFILL_THRESHOLD =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.local-prefill-threshold",
              new ValueType.Int(0, 1 << 20),
              PrefixSettings.DEFAULT_LOCAL_PREFILL_THRESHOLD,
              "prompts of at most this many tokens are prefilled by the decode node itself, no KV"
                  + " transfer; 0 = never"));
  ConfigKey<Double> ROUTER_PREFIX_CACHE_WEIGHT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.prefix-cache-weight",
              new ValueType.NonNegativeDecimal(),
              PrefixSettings.DEFAULT_CACHED_TOKEN_WEIGHT,
              "α in the router's prefill score `queued tokens − α · cached prefix tokens`"));
  ConfigKey<Integer> ROUTER_MIGRATION_LIMIT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.migration-limit",
              new ValueType.Int(0, 100),
              RouterConfig.DEFAULT_MIGRATION_LIMIT,
              "times one request may continue on another decode node after its node failed or"
                  + " went silent (a fresh reservation, the prompt and the tokens already sent"
                  + " prefilled again, then resumed); past it the request fails with one"
                  + " UNAVAILABLE; 0 = never"));
  ConfigKey<Duration> ROUTER_STREAM_SILENCE_TIMEOUT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.stream-silence-timeout",
              new ValueType.Timeout(),
              RouterConfig.DEFAULT_STREAM_SILENCE_TIMEOUT,
              "a decode stream with no message for this long (a frozen or unreachable node) is"
                  + " given up and its request continues on another decode node; sooner (1 s of"
                  + " silence) once the node has left the registry; 0 = never. Decode streams"
                  + " carry a token every step; healthy nodes on a loaded 2-core machine stalled"
                  + " up to ~5 s"));
  ConfigKey<Duration> ROUTER_MAX_QUEUE_DELAY =
      GROUP.define(
          ConfigKey.withoutDefault(
              "pdserve.router.max-queue-delay",
              new ValueType.Timeout(),
              RouterConfig.MAX_QUEUE_DELAY_PER_TTFT_TARGET
                  + " × pdserve.coordinator.ttft-target-ms ("
                  + new ValueType.Timeout().format(RouterConfig.DEFAULT_MAX_QUEUE_DELAY)
                  + ")",
              "a request predicted to wait longer than this for its first token (queued prompt"
                  + " tokens over the measured prefill throughput, plus how much later than"
                  + " forecast recent first tokens came) is refused at once with RESOURCE_EXHAUSTED"
                  + " / HTTP 429 and a Retry-After from the prediction, and so is one past the"
                  + " admission window (how many may wait for a first token at once, widened by"
                  + " first tokens within 60 % of this bound, narrowed by later ones; from 64); a"
                  + " request with nothing ahead of it is always admitted; 0 = never"));
  ConfigKey<Integer> ROUTER_PREFILL_TOKENS_PER_SECOND =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.prefill-tokens-per-second",
              new ValueType.Int(1, 1_000_000_000),
              RouterConfig.DEFAULT_PREFILL_TOKENS_PER_SECOND,
              "one prefill node's prompt throughput the router assumes for that prediction until"
                  + " it has measured the cluster's (from requests' first tokens)"));
  ConfigKey<Integer> ROUTER_IMAGES_MAX_PER_PROMPT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.max-per-prompt",
              new ValueType.Int(0, 1024),
              ImageIntakeSettings.DEFAULT_MAX_PER_PROMPT,
              "router: images one prompt may hold (more: 400); 0 = images refused"));
  ConfigKey<Long> ROUTER_IMAGES_MAX_BYTES =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.max-bytes",
              new ValueType.ByteSize(1, Integer.MAX_VALUE, "1..2GiB"),
              ImageIntakeSettings.DEFAULT_MAX_BYTES,
              "router: bytes of one encoded image (a data: URL decoded, a fetched body, a gRPC"
                  + " `Image.data`); more: 413, a fetch stopped as the body passes it. Keep the"
                  + " prompt's images under the workers' pdserve.grpc.max-inbound-bytes"));
  ConfigKey<Integer> ROUTER_IMAGES_MAX_PIXELS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.max-pixels",
              new ValueType.Int(1, Integer.MAX_VALUE),
              (int) ImageIntakeSettings.DEFAULT_MAX_PIXELS,
              "router: width × height of one image as its header declares it (more: 400, before"
                  + " any pixel is decoded)"));
  ConfigKey<Boolean> ROUTER_IMAGES_FETCH_ENABLED =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.fetch-enabled",
              KeyTypes.BOOL,
              false,
              "router: fetch `http(s)://` image URLs (data: URLs always work); hosts from"
                  + " pdserve.router.images.allowed-hosts only"));
  ConfigKey<String> ROUTER_IMAGES_ALLOWED_HOSTS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.allowed-hosts",
              ValueType.Text.any("comma-separated host names, `*.domain`, or `*`"),
              "",
              "router: hosts image URLs may name (`img.example.com`, `*.example.com`, `*` for any);"
                  + " empty = none. Loopback, private, link-local and other non-public addresses"
                  + " are refused at every hop whatever the list says"));
  ConfigKey<Duration> ROUTER_IMAGES_FETCH_TIMEOUT =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.fetch-timeout",
              new ValueType.Timeout(),
              ImageIntakeSettings.DEFAULT_FETCH_TIMEOUT,
              "router: the longest one image URL's fetch may take, redirects included"));
  ConfigKey<Integer> ROUTER_IMAGES_MAX_REDIRECTS =
      GROUP.define(
          ConfigKey.of(
              "pdserve.router.images.max-redirects",
              new ValueType.Int(0, 10),
              ImageIntakeSettings.DEFAULT_MAX_REDIRECTS,
              "router: redirects one image fetch may follow (each hop's host checked again)"));
}
