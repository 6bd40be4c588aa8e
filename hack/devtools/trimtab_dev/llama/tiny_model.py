"""The tiny model llama-server serves in tests: a llama-architecture GGUF generated here
from a fixed seed, so no weights are downloaded and every machine gets the same file.

It owns the model's layout (2 layers, 64-wide, F32, ~117 K parameters, ~0.5 MB), its
tokenizer metadata (GPT-2 byte-level BPE with ChatML and Hermes tool-call specials) and
the cache file it is written to once. The weights are random except for a few residual
dimensions set by hand, because purely random weights emit random bytes (invalid UTF-8,
control characters) that llama-server's output parsers reject; see _weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import tempfile
from collections.abc import Iterator

import gguf
import numpy as np
import numpy.typing as npt

from trimtab_dev.llama.chat_template import CHAT_TEMPLATE

# Bump when the generated file changes, so cached copies of an older model are not reused.
MODEL_VERSION = 1

_SEED = 20240607
_N_EMBD = 64
_N_LAYER = 2
_N_HEAD = 4
_N_FF = 128
_N_CTX = 4096

_BOS = "<|endoftext|>"
_IM_START = "<|im_start|>"
_IM_END = "<|im_end|>"
_TOOL_CALL = "<tool_call>"
_TOOL_CALL_END = "</tool_call>"
_TOOL_RESPONSE = "<tool_response>"
_TOOL_RESPONSE_END = "</tool_response>"
_TOOLS = "<tools>"
_MARKUP = (_TOOL_CALL, _TOOL_CALL_END, _TOOL_RESPONSE, _TOOL_RESPONSE_END, _TOOLS)

# A handful of merges: llama.cpp's BPE loader requires the merges key, and a few merged
# tokens exercise the merge path; each result is itself a vocabulary token.
_MERGES = [("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġt", "he")]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-unicode table: how byte-level BPE spells each byte as a token."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TOKENS = _bytes_to_unicode()
# Token ids: 0-255 are the bytes in byte order, then the specials, then the merges.
_SPECIALS = [_BOS, _IM_START, _IM_END, *_MARKUP]
_TOKENS = [_BYTE_TOKENS[b] for b in range(256)] + _SPECIALS + [a + b for a, b in _MERGES]
_ID = {text: i for i, text in enumerate(_TOKENS)}

#: The id of `<tool_call>`: callers pass `logit_bias: {TOOL_CALL_TOKEN_ID: 4}` so that
#: `tool_choice: auto` reliably starts a tool call.
TOOL_CALL_TOKEN_ID = _ID[_TOOL_CALL]
EOS_TOKEN_ID = _ID[_IM_END]

# Residual dimensions with a fixed meaning; the rest of the residual stream is random.
# "Bigram" features are set in a token's embedding and steer the next token; the context
# features are written by attention heads that look back over the whole context. The
# output layer reads each feature as a pull on some tokens' logits (_PULLS).
_DIM_BIAS = 0  # constant 1 for every token: the output layer reads it as a per-token bias
_DIM_AFTER_CALL = 1  # on `<tool_call>`: a newline comes next
_DIM_AFTER_CALL_END = 2  # on `</tool_call>`: end of turn comes next (one call per turn)
_DIM_AFTER_NEWLINE = 3  # on a newline, as at the start of the assistant's turn
_DIM_AFTER_BRACE = 4  # on `}`, as at the end of a call's JSON
_DIM_IS_TOOLS = 5  # on `<tools>`: what the head writing _DIM_TOOLS seeks
_DIM_IS_RESPONSE = 6  # on `<tool_response>`: what the head writing _DIM_RESPONDED seeks
_DIM_TOOLS = 7  # context: some `<tools>` is in it, so the system turn offered tools
_DIM_CALLED = 8  # context: some `<tool_call>` is in it: a call is being or was made
_DIM_RESPONDED = 9  # context: some `<tool_response>` is in it, so a tool has answered
_N_FIXED = 10
_FEATURE = 0.5  # every feature's value: small, so the norm shrinks the biases only a bit
_BIGRAM_FEATURES = {
    _TOOL_CALL: _DIM_AFTER_CALL,
    _TOOL_CALL_END: _DIM_AFTER_CALL_END,
    "Ċ": _DIM_AFTER_NEWLINE,
    "}": _DIM_AFTER_BRACE,
    _TOOL_RESPONSE: _DIM_IS_RESPONSE,
    _TOOLS: _DIM_IS_TOOLS,
}

# Layer 0's heads 0-2 find `<tools>`, `<tool_call>`, `<tool_response>` in context: the
# query is constant and the key is the token's feature, on the rotary pair that turns
# slowest (with a large rope base it hardly turns at all, so the match ignores distance).
_HEAD_DIM = _N_EMBD // _N_HEAD
_ROPE_BASE = 1e6
_MATCH_SCORE = 20.0  # attention logit of a match: it outweighs thousands of non-matches

# Logit biases: printable ASCII is neutral, so replies are text that the JSON and
# tool-call grammars can always continue, and closing quotes and brackets are a little
# favoured so free-form JSON ends; everything else is never sampled unless a grammar
# forces it; end of turn is favoured just enough that replies end after ~50 tokens.
_BIAS_PRINTABLE = 0.0
_BIAS_CLOSERS = {'"': 1.0, "}": 1.0, "]": 1.0}
_BIAS_NEWLINE = -4.0
_BIAS_OTHER = -20.0
_BIAS_EOS = 0.4
# Tool-call markup works through llama-server's default top_k=40 and min_p=0.05: a logit
# under most printable tokens' (~0) is never sampled, one level with them sometimes, and
# one 3 above them always. So `<tool_call>` is never sampled without tools offered,
# sometimes mid-reply when they are, and always at the start of a turn that offers them
# (or anywhere with logit_bias +4) until a call is in context; after that, inside the
# call's JSON strings above all, never (with logit_bias +4 at a turn's start, likely).
# `</tool_call>` is sampled only inside a call, where its JSON closes, before a response.
_BIAS_MARKUP = {_TOOL_CALL: -6.0, _TOOL_CALL_END: -6.5}
_PULLS: dict[str, dict[int, float]] = {
    _TOOL_CALL: {_DIM_AFTER_NEWLINE: 5.5, _DIM_TOOLS: 6.5, _DIM_CALLED: -7.0},
    _TOOL_CALL_END: {_DIM_AFTER_BRACE: 6.0, _DIM_CALLED: 4.0, _DIM_RESPONDED: -6.0},
    "Ċ": {_DIM_AFTER_CALL: 30.0},
    _IM_END: {_DIM_AFTER_CALL_END: 30.0},
}
_NOISE_FREE = (_TOOL_CALL, _TOOL_CALL_END, _IM_END)  # their odds stay exactly as set

_NOISE_EMBD = 0.1
_NOISE_LAYER = 0.02
_NOISE_OUT = 0.05  # printable logits spread ~0.25: top_k and min_p then cut sharply

_F32Array = npt.NDArray[np.float32]


def _token_bias(token_id: int) -> float:
    text = _TOKENS[token_id]
    if token_id == EOS_TOKEN_ID:
        return _BIAS_EOS
    if text in _BIAS_MARKUP:
        return _BIAS_MARKUP[text]
    if token_id < 256:
        if 0x20 <= token_id <= 0x7E:
            return _BIAS_CLOSERS.get(chr(token_id), _BIAS_PRINTABLE)
        return _BIAS_NEWLINE if token_id == 0x0A else _BIAS_OTHER
    return _BIAS_PRINTABLE if text not in _SPECIALS else _BIAS_OTHER


def _normed(fixed_sq: float) -> float:
    """What RMS norm turns a residual entry of 1 into, given the squared size of the
    token's fixed entries (1 for the bias dimension alone) plus its random ones."""
    noise_sq = (_N_EMBD - _N_FIXED) * _NOISE_EMBD**2
    return float(np.sqrt(_N_EMBD / (fixed_sq + noise_sq)))


def _wire_match_head(layer: dict[str, _F32Array], head: int, key_dim: int, out_dim: int) -> None:
    """Make `head` of this layer write _FEATURE into `out_dim` wherever some token so
    far has the bigram feature `key_dim`."""
    q, k, v, o = (layer[f"attn_{n}"] for n in ("q", "k", "v", "output"))
    slow = head * _HEAD_DIM + _HEAD_DIM - 2  # the slowest rotary pair: slow, slow + 1
    value = head * _HEAD_DIM
    key_normed = _FEATURE * _normed(1 + _FEATURE**2)
    weight = np.sqrt(_MATCH_SCORE * np.sqrt(_HEAD_DIM) / (_normed(1) * key_normed))
    q[slow : slow + 2] = 0.0
    k[slow : slow + 2] = 0.0
    v[value] = 0.0
    o[:, value] = 0.0
    q[slow, _DIM_BIAS] = weight
    k[slow, key_dim] = weight
    v[value, key_dim] = 1.0
    o[out_dim, value] = _FEATURE / key_normed


def _weights() -> dict[str, _F32Array]:
    """The tensors, in numpy's (out, in) layout that gguf reverses into ggml's.

    The fixed dimensions survive to the output: only the wired heads write them (the
    other rows of attn_output and ffn_down that would are zero), and the final norm's
    weight on them undoes RMS norm's scale of ~sqrt(n_embd), so each token's logit is
    its bias, plus its features' pulls, plus context-dependent noise from the rest.
    """
    rng = np.random.default_rng(_SEED)
    n_vocab = len(_TOKENS)

    def noise(scale: float, *shape: int) -> _F32Array:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embd = noise(_NOISE_EMBD, n_vocab, _N_EMBD)
    embd[:, :_N_FIXED] = 0.0
    embd[:, _DIM_BIAS] = 1.0
    for text, dim in _BIGRAM_FEATURES.items():
        embd[_ID[text], dim] = _FEATURE

    out = noise(_NOISE_OUT, n_vocab, _N_EMBD)
    out[:, :_N_FIXED] = 0.0
    out[[_ID[text] for text in _NOISE_FREE], _N_FIXED:] = 0.0
    out[:, _DIM_BIAS] = [_token_bias(t) for t in range(n_vocab)]
    for text, pulls in _PULLS.items():
        for dim, pull in pulls.items():
            out[_ID[text], dim] = pull / _FEATURE

    out_norm = np.ones(_N_EMBD, dtype=np.float32)
    out_norm[:_N_FIXED] = 1.0 / _normed(1)

    tensors = {"token_embd.weight": embd, "output_norm.weight": out_norm, "output.weight": out}
    for i in range(_N_LAYER):
        layer = {
            "attn_q": noise(_NOISE_LAYER, _N_EMBD, _N_EMBD),
            "attn_k": noise(_NOISE_LAYER, _N_EMBD, _N_EMBD),
            "attn_v": noise(_NOISE_LAYER, _N_EMBD, _N_EMBD),
            "attn_output": noise(_NOISE_LAYER, _N_EMBD, _N_EMBD),
            "ffn_gate": noise(_NOISE_LAYER, _N_FF, _N_EMBD),
            "ffn_up": noise(_NOISE_LAYER, _N_FF, _N_EMBD),
            "ffn_down": noise(_NOISE_LAYER, _N_EMBD, _N_FF),
        }
        layer["attn_output"][:_N_FIXED] = 0.0
        layer["ffn_down"][:_N_FIXED] = 0.0
        if i == 0:
            _wire_match_head(layer, 0, _DIM_IS_TOOLS, _DIM_TOOLS)
            _wire_match_head(layer, 1, _DIM_AFTER_CALL, _DIM_CALLED)
            _wire_match_head(layer, 2, _DIM_IS_RESPONSE, _DIM_RESPONDED)
        layer["attn_norm"] = np.ones(_N_EMBD, dtype=np.float32)
        layer["ffn_norm"] = np.ones(_N_EMBD, dtype=np.float32)
        tensors |= {f"blk.{i}.{name}.weight": w for name, w in layer.items()}
    return tensors


def _token_type(token_id: int) -> gguf.TokenType:
    text = _TOKENS[token_id]
    if text in _MARKUP:
        # USER_DEFINED, not CONTROL: the tool-call grammar must be able to emit them, and
        # each is one token, so llama-server accepts `<tool_call>` as a trigger word.
        return gguf.TokenType.USER_DEFINED
    if text in _SPECIALS:
        return gguf.TokenType.CONTROL
    return gguf.TokenType.NORMAL


def write_tiny_model(path: pathlib.Path) -> pathlib.Path:
    """Write the tiny model to `path` (same bytes every time) and return `path`."""
    arch = "llama"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("trimtab-tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(_N_CTX)
    writer.add_embedding_length(_N_EMBD)
    writer.add_block_count(_N_LAYER)
    writer.add_feed_forward_length(_N_FF)
    writer.add_head_count(_N_HEAD)
    writer.add_head_count_kv(_N_HEAD)
    writer.add_rope_dimension_count(_N_EMBD // _N_HEAD)
    writer.add_rope_freq_base(_ROPE_BASE)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(_TOKENS))

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(_TOKENS)
    writer.add_token_types([_token_type(t) for t in range(len(_TOKENS))])
    writer.add_token_merges([f"{a} {b}" for a, b in _MERGES])
    writer.add_bos_token_id(_ID[_BOS])
    writer.add_eos_token_id(EOS_TOKEN_ID)
    writer.add_pad_token_id(_ID[_BOS])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    for name, tensor in _weights().items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("TRIMTAB_CACHE_DIR")
    if root:
        return pathlib.Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(xdg) / "trimtab"


@contextlib.contextmanager
def _locked(lock_path: pathlib.Path) -> Iterator[None]:
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def cached_tiny_model() -> pathlib.Path:
    """The tiny model's path in the cache, writing it on first use.

    Callers in several processes (parallel test workers) wait on one lock; the file is
    renamed into place whole, so a reader never sees a partly written model.
    """
    models = _cache_dir() / "models"
    path = models / f"tiny-llama-v{MODEL_VERSION}.gguf"
    if path.exists():
        return path
    models.mkdir(parents=True, exist_ok=True)
    with _locked(models / f"{path.name}.lock"):
        if path.exists():
            return path
        fd, tmp = tempfile.mkstemp(dir=models, prefix=f".{path.name}.", suffix=".partial")
        os.close(fd)
        try:
            write_tiny_model(pathlib.Path(tmp))
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from others
            os.replace(tmp, path)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise
    return path
