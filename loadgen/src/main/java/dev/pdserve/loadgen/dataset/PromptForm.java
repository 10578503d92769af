package dev.pdserve.loadgen.dataset;

/** How synthetic prompts travel: token ids (the router's gRPC API accepts them) or text (HTTP). */
public enum PromptForm {
  TOKEN_IDS,
  TEXT
}
