"""Convert a BERT sentence-embedding model from Hugging Face's files to GGUF, without torch.

Input: a folder, or a zip of one, as sentence-transformers and Hugging Face publish a model:
config.json (model_type "bert"), model.safetensors and tokenizer.json (WordPiece), plus
sentence-transformers' modules.json and pooling config when there are. Output: the GGUF file
llama.cpp's BERT loader reads, with its weight matrices in f16 or q8_0; vectors (norms, biases)
and the position and token-type tables stay f32, as llama.cpp's own converter keeps them. The
same input gives the same bytes.

safetensors is read with numpy alone: an 8-byte little-endian header length, a JSON header, then
the raw tensors. The GGUF is written tensor by tensor into a scratch folder beside the output and
renamed onto it only when complete. What cannot be converted (another architecture or tokenizer,
a layer after pooling, a tensor BERT does not have, a broken file) is refused with a ConvertError
saying why (the messages read after "cannot convert SOURCE: "), and no output file is left.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

OUTTYPES = {"f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
            "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}
F32 = gguf.GGMLQuantizationType.F32

# Called with (step, done, total); total is 0 for a step with no parts to count.
Progress = Callable[[str, int, int], None]

# gguf 0.19 has no writer methods for these; llama.cpp reads them (its default is no lowercasing,
# which would give an uncased model the wrong tokens).
NORMALIZER_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"
NORMALIZER_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"
PHANTOM_SPACE = "\u2581"


class ConvertError(ValueError):
    """The input is not a model this converter can turn into GGUF, or is broken."""


def convert(source: Path, output: Path, outtype: str = "q8_0",
            progress: Progress = lambda step, done, total: None) -> Path:
    """Write `source` (a model folder or zip) as a GGUF file at `output`; return `output`."""
    if outtype not in OUTTYPES:
        raise ConvertError(f"unknown outtype {outtype!r}: expected one of {', '.join(OUTTYPES)}")
    if output.suffix != ".gguf":
        raise ConvertError(f"the output {output} must be a .gguf file")
    qtype, file_type = OUTTYPES[outtype]
    with ModelFiles(source) as files:
        progress(f"reading {source}", 0, 0)
        config = read_config(files.json("config.json"))
        vocab = read_vocabulary(files, config.vocab_size)
        pooling = read_pooling(files, progress)
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as scratch:
            partial = Path(scratch) / f"{output.name}.part"
            weights_file = files.local_path("model.safetensors", Path(scratch), progress)
            with Safetensors(weights_file) as weights:
                tensors = plan_tensors(weights, config, len(vocab.tokens), qtype)
                writer = gguf.GGUFWriter(partial, "bert")
                add_metadata(writer, files.name, config, vocab, pooling, file_type)
                write_tensors(writer, tensors, weights, f"writing {outtype} weights", progress)
            os.replace(partial, output)
    return output


def default_output(source: Path, outtype: str, folder: Path) -> Path:
    """Where `offgrid convert` writes by default: NAME-OUTTYPE.gguf in the models folder."""
    with ModelFiles(source) as files:
        return folder / f"{files.name}-{outtype}.gguf"


# -- the input files -------------------------------------------------------------------------------

class ModelFiles:
    """A model's files in a folder, or in a zip where they may sit under one folder."""

    def __init__(self, source: Path):
        self.source = source
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if source.is_dir():
            name = source.resolve().name
        elif zipfile.is_zipfile(source):
            try:
                self._zip = zipfile.ZipFile(source)
            except (zipfile.BadZipFile, OSError) as error:
                raise ConvertError(f"it is not a readable zip file ({error})") from None
            self._prefix = _model_folder_in(self._zip.namelist())
            name = posixpath.basename(self._prefix.rstrip("/")) or source.stem
        elif source.exists():
            raise ConvertError("it is neither a folder nor a zip file")
        else:
            raise ConvertError("there is no such file or folder")
        # The model's name: general.name in the file, and the default output's file name.
        self.name = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "model"

    def __enter__(self) -> ModelFiles:
        return self

    def __exit__(self, *exc) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        if self._zip is None:
            return (self.source / name).is_file()
        return self._prefix + name in self._zip.NameToInfo

    def json(self, name: str, kind: type = dict):
        if not self.has(name):
            raise ConvertError(f"it has no {name}")
        try:
            raw = ((self.source / name).read_bytes() if self._zip is None
                   else self._zip.read(self._prefix + name))
            value = json.loads(raw)
        except (ValueError, zipfile.BadZipFile, zlib.error) as error:
            raise ConvertError(f"{name} cannot be read as JSON ({error})") from None
        if not isinstance(value, kind):
            raise ConvertError(f"{name} is not a JSON {'object' if kind is dict else 'array'}")
        return value

    def local_path(self, name: str, scratch: Path, progress: Progress) -> Path:
        """A file on disk holding `name`: the model's own, or one unpacked from the zip."""
        if not self.has(name):
            raise ConvertError(f"it has no {name}")
        if self._zip is None:
            return self.source / name
        progress(f"unpacking {name} from {self.source.name}", 0, 0)
        target = scratch / posixpath.basename(name)
        try:
            with self._zip.open(self._prefix + name) as packed, open(target, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked, 1 << 20)
        except (zipfile.BadZipFile, zlib.error) as error:
            raise ConvertError(f"{name} in the zip is corrupt ({error})") from None
        return target


def _model_folder_in(names: list[str]) -> str:
    """The folder inside a zip that holds config.json beside model.safetensors ("" for the top)."""
    folders = [name[:-len("config.json")] for name in names
               if posixpath.basename(name) == "config.json"
               and name[:-len("config.json")] + "model.safetensors" in names]
    return min(folders, key=len, default="")


# -- config.json -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BertConfig:
    layers: int
    hidden: int
    ffn: int
    heads: int
    context: int
    vocab_size: int
    token_types: int
    norm_eps: float


def read_config(config: dict) -> BertConfig:
    if config.get("model_type") != "bert":
        raise ConvertError(f"config.json says model_type {config.get('model_type')!r}: only BERT "
                           "models (model_type 'bert') can be converted")
    # What llama.cpp's BERT graph computes; a model built otherwise would run, wrongly.
    for key, supported in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if config.get(key, supported) != supported:
            raise ConvertError(f"config.json has {key} {config[key]!r}: llama.cpp's BERT runs "
                               f"{supported!r} only")

    def number(key: str, default=None, kind: type = int):
        value = config.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0 or (
                kind is int and value != int(value)):
            raise ConvertError(f"config.json needs {key} as a positive number, not {value!r}")
        return kind(value)

    bert = BertConfig(
        layers=number("num_hidden_layers"), hidden=number("hidden_size"),
        ffn=number("intermediate_size"), heads=number("num_attention_heads"),
        context=number("max_position_embeddings"), vocab_size=number("vocab_size"),
        token_types=number("type_vocab_size", 2),  # Hugging Face's BertConfig defaults
        norm_eps=number("layer_norm_eps", 1e-12, float))
    if bert.hidden % bert.heads:
        raise ConvertError(f"config.json's hidden_size {bert.hidden} does not split into "
                           f"{bert.heads} attention heads")
    return bert


# -- tokenizer.json --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]  # in llama.cpp's phantom-space form
    types: list[int]  # gguf.TokenType
    special: dict[str, int]  # cls, sep, unk, pad, mask -> token id
    lowercase: bool
    strip_accents: bool | None  # None: when lowercasing, as Hugging Face's BertNormalizer does


_SPECIAL_TOKENS = {"cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "pad": "[PAD]",
                   "mask": "[MASK]"}


def read_vocabulary(files: ModelFiles, vocab_size: int) -> Vocabulary:
    tokenizer = files.json("tokenizer.json")
    model = tokenizer.get("model") if isinstance(tokenizer.get("model"), dict) else {}
    if model.get("type") != "WordPiece" or model.get("continuing_subword_prefix", "##") != "##":
        raise ConvertError(f"tokenizer.json holds a {model.get('type') or 'unknown'} tokenizer: "
                           "only BERT's WordPiece (continuing pieces marked ##) can be converted")
    ids = _token_ids(model.get("vocab"), tokenizer.get("added_tokens", []))
    if ids and max(ids.values()) >= vocab_size:
        raise ConvertError(f"tokenizer.json has token id {max(ids.values())}, more than "
                           f"config.json's vocab_size {vocab_size} allows")
    added = {entry["id"]: bool(entry.get("special")) for entry in tokenizer.get("added_tokens", [])}
    by_id = {token_id: token for token, token_id in ids.items()}
    tokens, types = [], []
    for token_id in range(vocab_size):
        if token_id not in by_id:  # a hole in the vocabulary still needs a row
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        kind = (gguf.TokenType.NORMAL if token_id not in added else
                gguf.TokenType.CONTROL if added[token_id] else gguf.TokenType.USER_DEFINED)
        tokens.append(_phantom_form(by_id[token_id], kind))
        types.append(kind)
    special = _special_ids(files, ids, model.get("unk_token"))
    lowercase, strip_accents = _normalizer_flags(tokenizer.get("normalizer"))
    return Vocabulary(tokens, types, special, lowercase, strip_accents)


def _token_ids(vocab, added_tokens) -> dict[str, int]:
    """Token text -> id, for WordPiece's vocabulary and the added (special) tokens."""
    if not isinstance(vocab, dict) or not isinstance(added_tokens, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("content"), str)
            and isinstance(entry.get("id"), int) for entry in added_tokens):
        raise ConvertError("tokenizer.json's vocabulary is not a WordPiece vocabulary")
    ids = dict(vocab)
    ids.update({entry["content"]: entry["id"] for entry in added_tokens})
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids.values()):
        raise ConvertError("tokenizer.json's vocabulary has ids that are not whole numbers")
    if len(set(ids.values())) != len(ids):
        raise ConvertError("tokenizer.json gives two tokens the same id")
    return ids


def _phantom_form(token: str, kind: int) -> str:
    """BERT marks a piece that continues a word ("##ing"); llama.cpp's WordPiece marks the start
    of a word with a phantom space instead ("▁walk", "ing"). Control tokens stay as they are."""
    if kind == gguf.TokenType.CONTROL:
        return token
    return token[2:] if token.startswith("##") else PHANTOM_SPACE + token


def _special_ids(files: ModelFiles, ids: dict[str, int], unk_token) -> dict[str, int]:
    """The ids of [CLS], [SEP] and the others, under the names the tokenizer configs give them."""
    names = dict(_SPECIAL_TOKENS, unk=unk_token or _SPECIAL_TOKENS["unk"])
    for config_name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later wins
        config = files.json(config_name) if files.has(config_name) else {}
        for kind in names:
            value = config.get(f"{kind}_token")
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                names[kind] = value
    special = {kind: ids[name] for kind, name in names.items() if name in ids}
    for kind in ("cls", "sep"):
        if kind not in special:
            raise ConvertError(f"tokenizer.json has no {names[kind]} token: llama.cpp's "
                               "WordPiece puts a cls token before every text and a sep after")
    return special


def _normalizer_flags(normalizer) -> tuple[bool, bool | None]:
    """(lowercase, strip_accents) from a BertNormalizer, or a Sequence of Lowercase and kin."""
    lowercase, strip_accents = False, None
    parts = normalizer.get("normalizers", [normalizer]) if isinstance(normalizer, dict) else []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "BertNormalizer":
            lowercase, strip_accents = bool(part.get("lowercase", True)), part.get("strip_accents")
        elif kind == "Lowercase":
            lowercase = True
        elif kind == "StripAccents":
            strip_accents = True
    return lowercase, strip_accents


# -- sentence-transformers' modules ----------------------------------------------------------------

_POOLING_TYPES = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS,
                  "lasttoken": gguf.PoolingType.LAST}
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                  "pooling_mode_lasttoken": "lasttoken", "pooling_mode_max_tokens": "max",
                  "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens": "weightedmean"}
# What llama.cpp runs of a sentence-transformers pipeline (OffGrid normalizes every vector).
_RUNNABLE_MODULES = ("Transformer", "Pooling", "Normalize")


def read_pooling(files: ModelFiles, progress: Progress) -> gguf.PoolingType:
    modules = files.json("modules.json", list) if files.has("modules.json") else []
    pooling_folder = None
    for module in modules:
        kind = str(module.get("type", "") if isinstance(module, dict) else "").rpartition(".")[2]
        if kind not in _RUNNABLE_MODULES:
            raise ConvertError(f"modules.json has a {kind or 'nameless'} module: llama.cpp runs "
                               "only the encoder, pooling and normalization")
        if kind == "Pooling":
            pooling_folder = str(module.get("path", ""))
            if posixpath.isabs(pooling_folder) or ".." in pooling_folder.split("/"):
                raise ConvertError(f"modules.json puts the pooling config outside the model, "
                                   f"in {pooling_folder}")
    if pooling_folder is None:
        progress("no sentence-transformers pooling config: mean pooling", 0, 0)
        return gguf.PoolingType.MEAN
    config = files.json(posixpath.join(pooling_folder, "config.json"))
    modes = [mode for flag, mode in _POOLING_FLAGS.items() if config.get(flag)] or [
        config.get("pooling_mode")]
    if len(modes) != 1 or modes[0] not in _POOLING_TYPES:
        raise ConvertError(f"the pooling config asks for {' + '.join(map(str, modes))} pooling: "
                           "llama.cpp pools by one of mean, cls or lasttoken")
    return _POOLING_TYPES[modes[0]]


# -- model.safetensors -----------------------------------------------------------------------------

_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
           "F64": np.dtype("<f8")}
_MAX_HEADER = 100 << 20


@dataclass(frozen=True)
class _Entry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # from the end of the header
    end: int


class Safetensors:
    """The tensors of a .safetensors file, each read on its own as float32."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")
        try:
            self._entries, self._data_start = self._read_header(path.stat().st_size)
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> Safetensors:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name].shape

    def read(self, name: str) -> np.ndarray:
        entry = self._entries[name]
        if entry.dtype not in _DTYPES:
            raise ConvertError(f"model.safetensors holds {name} as {entry.dtype}: only "
                               f"{', '.join(_DTYPES)} weights can be converted")
        self._file.seek(self._data_start + entry.start)
        raw = self._file.read(entry.end - entry.start)
        if len(raw) != entry.end - entry.start:
            raise ConvertError("model.safetensors is cut short")
        data = np.frombuffer(raw, _DTYPES[entry.dtype])
        if entry.dtype == "BF16":  # the top half of a float32
            data = (data.astype(np.uint32) << 16).view(np.float32)
        return data.astype(np.float32).reshape(entry.shape)

    def _read_header(self, size: int) -> tuple[dict[str, _Entry], int]:
        prefix = self._file.read(8)
        if len(prefix) != 8:
            raise _not_safetensors("it is shorter than its header")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(size - 8, _MAX_HEADER):
            raise _not_safetensors(f"its header length {length} is out of range")
        try:
            header = json.loads(self._file.read(length))
        except (ValueError, UnicodeDecodeError):
            raise _not_safetensors("its header is not JSON") from None
        if not isinstance(header, dict):
            raise _not_safetensors("its header is not a JSON object")
        header.pop("__metadata__", None)
        data_size = size - 8 - length
        return {name: _entry(name, value, data_size) for name, value in header.items()}, 8 + length


def _entry(name: str, value, data_size: int) -> _Entry:
    try:
        dtype, shape, (start, end) = value["dtype"], tuple(value["shape"]), value["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise _not_safetensors(f"the entry for {name} is malformed") from None
    if not isinstance(dtype, str) or not all(isinstance(n, int) and n >= 0
                                             for n in (*shape, start, end)):
        raise _not_safetensors(f"the entry for {name} is malformed")
    if not start <= end <= data_size:
        raise _not_safetensors(f"{name} runs past the end of the file (is it cut short?)")
    if dtype in _DTYPES and end - start != math.prod(shape) * _DTYPES[dtype].itemsize:
        raise _not_safetensors(f"{name}'s size does not match its shape {list(shape)}")
    return _Entry(dtype, shape, start, end)


def _not_safetensors(why: str) -> ConvertError:
    return ConvertError(f"model.safetensors is not a safetensors file: {why}")


# -- tensors ---------------------------------------------------------------------------------------

# Hugging Face's BERT module names -> llama.cpp's tensor names.
_EMBEDDING_TENSORS = {"embeddings.word_embeddings": "token_embd",
                      "embeddings.position_embeddings": "position_embd",
                      "embeddings.token_type_embeddings": "token_types",
                      "embeddings.LayerNorm": "token_embd_norm"}
_LAYER_TENSORS = {"attention.self.query": "attn_q", "attention.self.key": "attn_k",
                  "attention.self.value": "attn_v", "attention.output.dense": "attn_output",
                  "attention.output.LayerNorm": "attn_output_norm",
                  "intermediate.dense": "ffn_up", "output.dense": "ffn_down",
                  "output.LayerNorm": "layer_output_norm"}
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
# Parts of a BERT checkpoint that an embedding model does not run: the pooler (a dense layer
# over [CLS] for next-sentence prediction), the pretraining heads and a buffer of position ids.
_UNUSED = re.compile(r"^(embeddings\.position_ids$|pooler\.|cls\.)")


@dataclass(frozen=True)
class PlannedTensor:
    name: str  # in the GGUF file
    source: str  # in model.safetensors
    shape: tuple[int, ...]  # numpy's order: (rows, columns)
    qtype: gguf.GGMLQuantizationType

    @property
    def nbytes(self) -> int:
        block, size = gguf.GGML_QUANT_SIZES[self.qtype]
        return math.prod(self.shape) // block * size


def gguf_name(source: str) -> str | None:
    """llama.cpp's name for a tensor of a Hugging Face BERT; None for one it does not use."""
    name = source.removeprefix("bert.")  # BertForMaskedLM and kin keep the encoder under bert.
    name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))  # older layer norms
    if _UNUSED.match(name):
        return None
    module, _, kind = name.rpartition(".")
    if kind in ("weight", "bias"):
        if module in _EMBEDDING_TENSORS:
            return f"{_EMBEDDING_TENSORS[module]}.{kind}"
        layer = _LAYER.match(module)
        if layer and layer.group(2) in _LAYER_TENSORS:
            return f"blk.{int(layer.group(1))}.{_LAYER_TENSORS[layer.group(2)]}.{kind}"
    raise ConvertError(f"model.safetensors has a tensor {source!r} that is not part of a BERT "
                       "encoder")


def expected_shapes(config: BertConfig, n_vocab: int) -> dict[str, tuple[int, ...]]:
    """Every tensor llama.cpp's BERT loader wants, with its shape in numpy's order."""
    hidden, ffn = config.hidden, config.ffn
    shapes = {"token_embd.weight": (n_vocab, hidden),
              "position_embd.weight": (config.context, hidden),
              "token_types.weight": (config.token_types, hidden),
              "token_embd_norm.weight": (hidden,), "token_embd_norm.bias": (hidden,)}
    linear = {"attn_q": (hidden, hidden), "attn_k": (hidden, hidden),
              "attn_v": (hidden, hidden), "attn_output": (hidden, hidden),
              "ffn_up": (ffn, hidden), "ffn_down": (hidden, ffn)}  # (outputs, inputs)
    for block in range(config.layers):
        for name, (outputs, inputs) in linear.items():
            shapes[f"blk.{block}.{name}.weight"] = (outputs, inputs)
            shapes[f"blk.{block}.{name}.bias"] = (outputs,)
        for norm in ("attn_output_norm", "layer_output_norm"):
            shapes[f"blk.{block}.{norm}.weight"] = shapes[f"blk.{block}.{norm}.bias"] = (hidden,)
    return shapes


def plan_tensors(weights: Safetensors, config: BertConfig, n_vocab: int,
                 qtype: gguf.GGMLQuantizationType) -> list[PlannedTensor]:
    """The GGUF's tensors in model.safetensors' order, checked against config.json."""
    expected = expected_shapes(config, n_vocab)
    planned: dict[str, PlannedTensor] = {}
    for source in weights.names:
        name = gguf_name(source)
        if name is None:
            continue
        if name not in expected:
            raise ConvertError(f"model.safetensors has {source}, which a BERT of "
                               f"{config.layers} layers (config.json) does not have")
        if name in planned:
            raise ConvertError(f"model.safetensors has {planned[name].source} and {source}, "
                               "the same tensor twice")
        if weights.shape(source) != expected[name]:
            raise ConvertError(f"{source} has the shape {list(weights.shape(source))}, "
                               f"config.json and tokenizer.json imply {list(expected[name])}")
        planned[name] = PlannedTensor(name, source, expected[name],
                                      _tensor_type(name, expected[name], qtype))
    missing = sorted(expected.keys() - planned.keys())
    if missing:
        raise ConvertError(f"model.safetensors lacks {len(missing)} of the tensors a BERT "
                           f"encoder has, such as the one llama.cpp calls {missing[0]}")
    return list(planned.values())


def _tensor_type(name: str, shape: tuple[int, ...], wanted: gguf.GGMLQuantizationType
                 ) -> gguf.GGMLQuantizationType:
    # llama.cpp keeps vectors and the small position and token-type tables in f32.
    if len(shape) == 1 or name.startswith(("position_embd.", "token_types.")):
        return F32
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    # q8_0 packs each row in blocks of 32 values; llama.cpp's converter falls back to f16 too.
    return wanted if shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


# -- the GGUF file ---------------------------------------------------------------------------------

def add_metadata(writer: gguf.GGUFWriter, name: str, config: BertConfig, vocab: Vocabulary,
                 pooling: gguf.PoolingType, file_type: gguf.LlamaFileType) -> None:
    """The keys llama.cpp's BERT loader and WordPiece tokenizer read."""
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_block_count(config.layers)
    writer.add_context_length(config.context)
    writer.add_embedding_length(config.hidden)
    writer.add_feed_forward_length(config.ffn)
    writer.add_head_count(config.heads)
    writer.add_layer_norm_eps(config.norm_eps)
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_token_type_count(config.token_types)
    writer.add_tokenizer_model("bert")  # llama.cpp's WordPiece, which has no pre-tokenizer kinds
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    special = vocab.special
    writer.add_bos_token_id(special["cls"])
    writer.add_eos_token_id(special["sep"])
    writer.add_sep_token_id(special["sep"])
    for kind, add in (("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id),
                      ("mask", writer.add_mask_token_id)):
        if kind in special:
            add(special[kind])
    # [CLS] text [SEP]: said as bos and eos, with no separator after that.
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_sep_token(False)
    writer.add_bool(NORMALIZER_LOWERCASE, vocab.lowercase)
    if vocab.strip_accents is not None:
        writer.add_bool(NORMALIZER_STRIP_ACCENTS, bool(vocab.strip_accents))


def write_tensors(writer: gguf.GGUFWriter, tensors: list[PlannedTensor], weights: Safetensors,
                  step: str, progress: Progress) -> None:
    """Header, metadata and tensor table first, then each tensor as it is converted: one tensor
    is in memory at a time. Closes the file."""
    for tensor in tensors:
        writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(np.float32), tensor.nbytes,
                               raw_dtype=tensor.qtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for done, tensor in enumerate(tensors, 1):
            writer.write_tensor_data(gguf.quants.quantize(weights.read(tensor.source),
                                                          tensor.qtype))
            progress(step, done, len(tensors))
    finally:
        writer.close()
