package dev.pdserve.core.metrics;

/**
 * Every metric name pdserve exposes, in one place. Serving metrics use vLLM's names, with vLLM's
 * {@code vllm:} prefix and {@code model_name} label, because that is what Grafana dashboards, KEDA
 * triggers and the Gateway API inference extension query; pdserve's own (KV transfer, experts,
 * batching, role changes, rejections) are prefixed {@code pdserve_}. Counters are named without
 * {@code _total}: the client library appends it on exposition (as vLLM's does).
 */
public final class MetricNames {
  private MetricNames() {}

  public static final String VLLM_PREFIX = "vllm:";

  // ---- vLLM-named: router (per request, end to end) ----
  public static final String TIME_TO_FIRST_TOKEN = "vllm:time_to_first_token_seconds";
  public static final String INTER_TOKEN_LATENCY = "vllm:inter_token_latency_seconds";
  public static final String E2E_REQUEST_LATENCY = "vllm:e2e_request_latency_seconds";
  public static final String REQUEST_QUEUE_TIME = "vllm:request_queue_time_seconds";
  public static final String REQUEST_PREFILL_TIME = "vllm:request_prefill_time_seconds";
  public static final String REQUEST_DECODE_TIME = "vllm:request_decode_time_seconds";

  // ---- vLLM-named: router and workers ----
  public static final String NUM_REQUESTS_RUNNING = "vllm:num_requests_running";
  public static final String NUM_REQUESTS_WAITING = "vllm:num_requests_waiting";
  public static final String PROMPT_TOKENS = "vllm:prompt_tokens";
  public static final String GENERATION_TOKENS = "vllm:generation_tokens";
  public static final String REQUEST_SUCCESS = "vllm:request_success";
  public static final String FINISHED_REASON = "finished_reason";

  // ---- vLLM-named: workers ----
  public static final String KV_CACHE_USAGE = "vllm:kv_cache_usage_perc";
  public static final String PREFIX_CACHE_QUERIES = "vllm:prefix_cache_queries";
  public static final String PREFIX_CACHE_HITS = "vllm:prefix_cache_hits";

  // ---- pdserve: router ----
  public static final String REQUEST_REJECTIONS = "pdserve_request_rejections";
  public static final String REQUEST_MIGRATIONS = "pdserve_request_migrations";
  public static final String ROUTER_FORECAST_QUEUE_DELAY =
      "pdserve_router_forecast_queue_delay_seconds";
  public static final String ROUTER_FORECAST_LAG = "pdserve_router_forecast_lag_seconds";
  public static final String ROUTER_FORECAST_PREFILL_RATE =
      "pdserve_router_forecast_prefill_tokens_per_second";
  public static final String ROUTER_ADMISSION_WINDOW = "pdserve_router_admission_window";
  public static final String REASON = "reason";

  // ---- pdserve: workers ----
  public static final String KV_BLOCKS_TOTAL = "pdserve_kv_blocks_total";
  public static final String KV_RESERVED_BLOCKS = "pdserve_kv_reserved_blocks";
  public static final String KV_TRANSFER_SENT_BYTES = "pdserve_kv_transfer_sent_bytes";
  public static final String KV_TRANSFER_SEND_TIME = "pdserve_kv_transfer_send_seconds";
  public static final String KV_TRANSFER_RECEIVED_BYTES = "pdserve_kv_transfer_received_bytes";
  public static final String KV_TRANSFER_RECEIVE_TIME = "pdserve_kv_transfer_receive_seconds";
  // Off-heap Arrow bytes held now / at most, per allocator (label allocator).
  public static final String ARROW_ALLOCATED_BYTES = "pdserve_arrow_allocated_bytes";
  public static final String ARROW_PEAK_BYTES = "pdserve_arrow_peak_bytes";
  public static final String ALLOCATOR = "allocator";
  public static final String PREFILL_STEP_TIME = "pdserve_prefill_step_seconds";
  public static final String PREFILL_STEP_TOKENS = "pdserve_prefill_step_tokens";
  public static final String DECODE_STEP_TIME = "pdserve_decode_step_seconds";
  public static final String DECODE_BATCH_SIZE = "pdserve_decode_batch_size";
  public static final String EXPERT_DISPATCH_TIME = "pdserve_expert_dispatch_seconds";
  public static final String EXPERT_DISPATCH_FAILURES = "pdserve_expert_dispatch_failures";
  // Vision (workers of a VL model): per role, as both roles share a worker's registry.
  public static final String PREFILL_VISION_ENCODER_TIME = "pdserve_prefill_vision_encoder_seconds";
  public static final String PREFILL_VISION_IMAGES_ENCODED =
      "pdserve_prefill_vision_images_encoded";
  public static final String PREFILL_VISION_ENCODER_CACHE_HITS =
      "pdserve_prefill_vision_encoder_cache_hits";
  public static final String PREFILL_VISION_TOKENS = "pdserve_prefill_vision_tokens";
  public static final String DECODE_VISION_ENCODER_TIME = "pdserve_decode_vision_encoder_seconds";
  public static final String DECODE_VISION_IMAGES_ENCODED = "pdserve_decode_vision_images_encoded";
  public static final String DECODE_VISION_ENCODER_CACHE_HITS =
      "pdserve_decode_vision_encoder_cache_hits";
  public static final String DECODE_VISION_TOKENS = "pdserve_decode_vision_tokens";
  public static final String ROLE_SWITCHES = "pdserve_role_switches";
  public static final String MIGRATIONS = "pdserve_migrations";
  public static final String ROLE_SWITCH_TIME = "pdserve_role_switch_seconds";
  public static final String ROLE_SWITCH_REFUSALS = "pdserve_role_switch_refusals";

  /** 1 for the role a worker serves now, 0 for the other (label {@code role}). */
  public static final String WORKER_ROLE = "pdserve_worker_role";

  public static final String ROLE = "role";

  // ---- pdserve: expert shards ----
  public static final String EXPERT_TOKENS = "pdserve_expert_tokens";
  public static final String EXPERT_COMPUTE_TIME = "pdserve_expert_compute_seconds";
  public static final String EXPERT_DISPATCHES_REJECTED = "pdserve_expert_dispatches_rejected";
  public static final String LAYER = "layer";
  public static final String GROUP = "group";
  public static final String EXPERT = "expert";
}
