"""Raw llama-cpp baseline for benches: the same chat prompts run in-process through
``llama_cpp.Llama.create_chat_completion`` (no HTTP, no LangChain), with the
same chat format and llama.cpp patches as tastebud's embedded server, so a
bench can print it next to our path's tokens/s (bench/refresh.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from tastebud.embedded.model import INSTALL_HINT
from tastebud.embedded.patches import LlamaPatches, extra_bufts_enabled, omp_passive
from tastebud.embedded.server import CHAT_FORMAT, thread_count
from tastebud.errors import ModelError


@dataclass
class Throughput:
    """Generated tokens and wall seconds over a set of prompts (load time excluded)."""

    tokens: int
    seconds: float
    prompt_tokens: int = 0
    per_prompt: list[tuple[int, float]] = field(default_factory=list)


def as_messages(prompt: str | Iterable[Any]) -> list[dict[str, str]]:
    """A prompt as OpenAI-style role/content dicts (str -> one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    roles = {"human": "user", "ai": "assistant"}
    out = []
    for m in prompt:
        if isinstance(m, dict):
            role, content = m["role"], m["content"]
        elif isinstance(m, tuple):
            role, content = m
        else:  # a LangChain message
            role, content = m.type, m.content
        out.append({"role": roles.get(role, role), "content": content})
    return out


def raw_chat_throughput(
    model_path: Path | str,
    prompts: Sequence[str | Iterable[Any]],
    *,
    max_tokens: int = 256,
    n_ctx: int = 2048,
    n_threads: int = 0,
    temperature: float = 0.0,
    seed: int = 0,
) -> Throughput:
    """Run the prompts one by one through in-process llama-cpp with the same chat
    format the server uses; count generated tokens from its usage block."""
    omp_passive()
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ModelError(f"llama-cpp-python is not installed ({exc})", hint=INSTALL_HINT) from exc
    threads = thread_count(n_threads)
    patches = LlamaPatches(extra_bufts_enabled())
    patches.__enter__()  # the same fixes as the server child, undone below
    llm = None
    result = Throughput(tokens=0, seconds=0.0)
    try:
        llm = Llama(
            model_path=str(model_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
            chat_format=CHAT_FORMAT, seed=seed, verbose=False,
        )
        for prompt in prompts:
            t0 = time.perf_counter()
            out = llm.create_chat_completion(
                messages=as_messages(prompt), max_tokens=max_tokens, temperature=temperature, seed=seed
            )
            dt = time.perf_counter() - t0
            usage = out.get("usage") or {}
            n = int(usage.get("completion_tokens", 0))
            result.tokens += n
            result.prompt_tokens += int(usage.get("prompt_tokens", 0))
            result.seconds += dt
            result.per_prompt.append((n, dt))
    finally:
        if llm is not None:
            llm.close()
        patches.__exit__(None, None, None)
    return result
