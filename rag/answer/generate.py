"""Stage 3 — generate. Generator backends: llama-cpp-python for GGUF files (default) and transformers for local
Hugging Face causal-LM folders. Both take chat messages and return text or a token stream.

Models load lazily and once per process (prompt processing, not loading, is the latency).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, Protocol

from ..config import RagConfig
from ..modelprep.prepare import GENERATORS, ModelMissingError, require_generator

Messages = list[dict[str, str]]


class Generator(Protocol):
    """Writes an answer to chat messages (the "free" strategy)."""

    name: str

    def generate(self, messages: Messages, max_tokens: int = 128, stream: bool = False): ...


class PrefillGenerator(Generator, Protocol):
    """A generator that also continues a prefilled answer turn ("copy" strategy) and scores next-token
    options ("read" strategy); a generator without these gets the "free" strategy."""

    def complete(self, messages: Messages, prefill: str = "", max_tokens: int = 48,
                 stop: list[str] | None = None) -> str: ...

    def option_logprobs(self, messages: Messages, prefill: str, options: list[str]) -> list[float]: ...


class LlamaCppGenerator:
    """A GGUF model through llama-cpp-python, using the chat template stored in the file."""

    def __init__(self, path: str | Path, n_ctx: int = 2048, n_threads: int = 2, temperature: float = 0.0,
                 name: str | None = None, use_mmap: bool = False):
        self.path = Path(path)
        self.name = name or self.path.name
        self.n_ctx, self.n_threads, self.temperature = n_ctx, n_threads, temperature
        self.use_mmap = use_mmap  # see ModelConfig.llama_mmap: False reads the weights once into private memory
        self._llm = None
        self._formatter = None
        self._lock = threading.Lock()  # one llama context cannot serve two requests at once

    @property
    def llm(self):
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as e:
                raise ModelMissingError(f"llama-cpp-python is not installed ({e}); run: bash scripts/setup.sh")
            self._llm = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                              n_threads_batch=self.n_threads, n_batch=512, use_mmap=self.use_mmap, verbose=False, seed=0)
        return self._llm

    def generate(self, messages: Messages, max_tokens: int = 128, stream: bool = False):
        if stream:
            return self._stream(messages, max_tokens)
        with self._lock:
            out = self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                  temperature=self.temperature, top_k=1, seed=0)
        return out["choices"][0]["message"]["content"] or ""

    def _stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        with self._lock:
            for part in self.llm.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                        temperature=self.temperature, top_k=1, seed=0,
                                                        stream=True):
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield delta

    # ---- reading with log-probabilities (the model points and copies; the app decides) ----
    def render(self, messages: Messages, prefill: str = "") -> str:
        """The GGUF's chat template applied to ``messages`` with the assistant turn opened and
        ``prefill`` already written in it."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self.llm
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelMissingError(f"{self.path.name} has no chat template")
            tok = lambda t: llm.detokenize([t], special=True).decode("utf-8", "ignore") if t >= 0 else ""  # noqa: E731
            self._formatter = Jinja2ChatFormatter(template, eos_token=tok(llm.token_eos()), bos_token=tok(llm.token_bos()))
        return self._formatter(messages=messages).prompt + prefill

    def _last_logits(self, prompt: str):
        """Evaluate ``prompt`` (reusing the longest prefix already in the KV cache) and return the
        logits of the next token."""
        import numpy as np

        llm = self.llm
        toks = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        old = llm.input_ids[: llm.n_tokens].tolist()
        n = 0
        while n < min(len(old), len(toks) - 1) and old[n] == toks[n]:
            n += 1
        llm.n_tokens = n
        llm.eval(toks[n:])
        return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()

    def option_logprobs(self, messages: Messages, prefill: str, options: list[str]) -> list[float]:
        """Log-probabilities, normalised over ``options``, that the assistant continues ``prefill``
        with each option (judged by the option's first token)."""
        import numpy as np

        with self._lock:
            logits = self._last_logits(self.render(messages, prefill))
            ids = [self.llm.tokenize(o.encode("utf-8"), add_bos=False, special=False)[0] for o in options]
        z = np.array([logits[i] for i in ids], dtype=np.float64)
        z -= z.max()
        return (z - np.log(np.exp(z).sum())).tolist()

    def complete(self, messages: Messages, prefill: str = "", max_tokens: int = 48, stop: list[str] | None = None) -> str:
        """Greedy continuation of the assistant turn after ``prefill`` (prefix cache reused)."""
        with self._lock:
            toks = self.llm.tokenize(self.render(messages, prefill).encode("utf-8"), add_bos=False, special=True)
            out = self.llm.create_completion(toks, max_tokens=max_tokens, temperature=0.0, top_k=1, seed=0,
                                             stop=stop or [])
        return out["choices"][0]["text"]


class TransformersGenerator:
    """Any local Hugging Face causal LM folder (slower on CPU; the design card's transformers path)."""

    def __init__(self, path: str | Path, temperature: float = 0.0, n_threads: int = 2):
        self.path = Path(path)
        self.name = self.path.name
        self.temperature = temperature
        self.n_threads = n_threads
        self._model = self._tok = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            torch.set_num_threads(self.n_threads)
            self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(str(self.path), local_files_only=True)
            self._model.eval()
        return self._model, self._tok

    def _inputs(self, messages: Messages):
        model, tok = self._load()
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\n"
            ids = tok(text, return_tensors="pt")
        return model, tok, ids

    def generate(self, messages: Messages, max_tokens: int = 128, stream: bool = False):
        if stream:
            return self._stream(messages, max_tokens)
        import torch

        with self._lock, torch.inference_mode():
            model, tok, inputs = self._inputs(messages)
            out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        return tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def _stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        with self._lock:
            model, tok, inputs = self._inputs(messages)
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
            kwargs = dict(**inputs, max_new_tokens=max_tokens, do_sample=False, streamer=streamer,
                          pad_token_id=tok.pad_token_id or tok.eos_token_id)
            t = threading.Thread(target=model.generate, kwargs=kwargs, daemon=True)
            t.start()
            yield from streamer
            t.join()


_CACHE: dict[str, Generator] = {}
_CACHE_LOCK = threading.Lock()


def get_generator(cfg: RagConfig, name: str | None = None) -> Generator:
    """Factory: a known name, a .gguf path or a Hugging Face folder; one instance per process."""
    name = name or cfg.generator
    path = require_generator(cfg, name)
    key = f"{path}|{cfg.n_ctx}|{cfg.n_threads}|{cfg.temperature}|{cfg.llama_mmap}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            if path.is_dir():
                if not (path / "config.json").exists():
                    raise ModelMissingError(f"{path} is not a Hugging Face model folder (no config.json)")
                _CACHE[key] = TransformersGenerator(path, cfg.temperature, cfg.n_threads)
            elif path.suffix.lower() == ".gguf":
                _CACHE[key] = LlamaCppGenerator(path, cfg.n_ctx, cfg.n_threads, cfg.temperature,
                                                name=name if name in GENERATORS else None, use_mmap=cfg.llama_mmap)
            else:
                raise ModelMissingError(f"{path}: expected a .gguf file or a Hugging Face model folder")
        return _CACHE[key]
