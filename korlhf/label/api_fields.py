"""The settings of a judge behind an OpenAI-compatible endpoint (`korlhf.label.api.ApiJudge`):
`korlhf label`'s api judge and `korlhf eval judge` spell, mean and default them the same."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class ApiFields:
    base_url: str = field(default="https://api.openai.com/v1", metadata={
        "help": "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (ollama)"})
    judge_model: str = field(default="gpt-4o-mini", metadata={"help": "the judge's model name at that endpoint"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={
        "help": "environment variable holding the API key ('' for a server that needs none)"})
    judge_temperature: float = field(default=0.0, metadata={"help": "judge sampling temperature"})
    judge_max_tokens: int = field(default=1024, metadata={"help": "longest judge answer (tokens)"})
    concurrency: int = field(default=4, metadata={"help": "requests in flight at once"})
    timeout: float = field(default=60.0, metadata={"help": "seconds before a request times out (then retried)"})
    max_retries: int = field(default=5, metadata={"help": "retries on 429 / 5xx / timeouts / malformed responses"})
    parse_retries: int = field(default=2, metadata={
        "help": "re-asks when an answer has no verdict; then failed (eval judge: only with judge_temperature > 0)"})
    backoff_base: float = field(default=1.0, metadata={"help": "first retry wait in seconds, doubled each retry"})
    backoff_max: float = field(default=60.0, metadata={"help": "longest wait between retries, Retry-After included"})
    price_input: float = field(default=0.0, metadata={"help": "USD per 1M prompt tokens (for the cost counter)"})
    price_output: float = field(default=0.0, metadata={"help": "USD per 1M completion tokens"})
    cache: str | None = field(default=None, metadata={"help": "judge answer cache (default: OUTPUT_DIR/judge_cache.jsonl)"})
