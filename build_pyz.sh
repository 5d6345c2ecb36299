#!/usr/bin/env bash
# Build offgrid.pyz: one file that runs `python3 offgrid.pyz serve` on an x86-64 Linux where
# Python 3.11 is all that is installed. It holds offgrid/, the pure-Python dependencies (vendor/,
# filled here) and the native parts from .venv (llama_cpp built portable by scripts/setup.sh,
# numpy, psutil) in native/, which offgrid/_zipapp.py unpacks on first run.
# Usage: ./build_pyz.sh [OUTPUT]   (default: offgrid.pyz in this folder)
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
output="$(realpath -m "${1:-$root/offgrid.pyz}")"
python="$root/.venv/bin/python"
vendor="$root/vendor"

# Imported from inside the .pyz: OffGrid's dependencies (pypdf for the knowledge base's PDFs,
# pg8000 for a shared PostgreSQL database) and those llama_cpp and gguf import as they load (gguf
# imports PyYAML).
pure_packages=(huggingface-hub tomli pypdf pg8000 jinja2 diskcache typing-extensions pyyaml)
# The same, installed without what they declare: gguf (for `offgrid convert`) names numpy, which
# comes native, and requests and tqdm, which it imports only for what convert does not use.
pure_packages_alone=(gguf)
# Unpacked on first run: compiled code cannot be imported from a zip. Globbed in site-packages.
native_packages=(llama_cpp numpy numpy.libs psutil
                 'llama_cpp_python-*.dist-info' 'numpy-*.dist-info' 'psutil-*.dist-info')

# pip install into vendor/, at the versions .venv holds. Console scripts are not carried (and a
# second install would trip over their folder).
vendor_install() {
    "$python" -m pip install --quiet --no-compile --disable-pip-version-check --target "$vendor" \
        --constraint <("$python" -m pip list --format=freeze --exclude-editable) "$@"
    rm -rf "$vendor/bin"
}

fill_vendor() {
    find "$vendor" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
    vendor_install "${pure_packages[@]}"
    vendor_install --no-deps "${pure_packages_alone[@]}"
    # Compiled speedups (tomli, MarkupSafe, PyYAML) cannot load from the zip: each package falls
    # back to its Python code. hf-xet, compiled only, is a faster Hugging Face download protocol;
    # huggingface_hub downloads over plain HTTPS without it.
    find "$vendor" -name '*.so' -delete
    rm -rf "$vendor"/hf_xet*
}

copy_native() {
    local native="$1" site lib
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')"
    mkdir -p "$native"
    (cd "$site" && cp -r ${native_packages[@]} "$native/")
    find "$native" -name __pycache__ -prune -exec rm -rf {} +
    find "$native/numpy" -name tests -prune -exec rm -rf {} +  # numpy's own test suite
    lib="$native/llama_cpp/lib"
    # llama_cpp opens lib*.so and the libraries find each other by soname (lib*.so.0): the fully
    # versioned copies (a wheel cannot hold symlinks) are never opened.
    find "$lib" -name 'lib*.so.*.*' -delete
    bundle_openmp "$lib"
}

# llama.cpp's CPU backend needs libgomp, which not every Linux has installed; the libraries'
# RUNPATH ($ORIGIN) finds this copy before the system's.
bundle_openmp() {
    local lib="$1" libgomp
    libgomp="$(ldd "$lib/libggml-cpu.so" | awk '$1 == "libgomp.so.1" {print $3}')"
    [ -z "$libgomp" ] || cp "$libgomp" "$lib/libgomp.so.1"
}

[ -x "$python" ] || "$root/scripts/setup.sh" server
partial="$output.partial"  # renamed onto $output when complete: a running .pyz keeps its file
stage="$(mktemp -d)"
trap 'rm -rf "$stage" "$partial"' EXIT
mkdir -p "$(dirname "$output")"

fill_vendor
mkdir "$stage/app"
# vendor/ goes to the top level: importlib.metadata finds no packages in a zip's subfolders.
cp -r "$root/offgrid" "$vendor/." "$stage/app/"
rm "$stage/app/README.md"
find "$stage/app" -name __pycache__ -prune -exec rm -rf {} +
copy_native "$stage/app/native"

interpreter="$("$python" -c 'import sys; print("python%d.%d" % sys.version_info[:2])')"
"$python" -m zipapp "$stage/app" --compress --main offgrid._zipapp:main \
    --python "/usr/bin/env $interpreter" --output "$partial"
mv "$partial" "$output"
echo "build_pyz: $output ($(du -h "$output" | cut -f1))" >&2
