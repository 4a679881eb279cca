"""The .dic codec: file round trip against ``forward``, the header, latent checksums, every
corrupt-file case, header consistency, limits, wrong weights, the checkpoint search, version-1
files, thread determinism, folders, and the command line's exit code."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dic import codec
from dic.apps.cli import main
from dic.checkpoints import save_checkpoint, weights_fingerprint
from dic.codec.format import pack_raw
from dic.data.io import read_image, to_tensor, write_image
from dic.errors import BitstreamError, CheckpointError, OptionError
from dic.metrics import quantize_8bit
from dic.models import create_model

from coding_models import coder_consistent

TINY = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
H, W = 70, 90  # not multiples of 64: exercises padding and cropping


def _image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth noisy test picture (gradients + noise), uint8 H×W×3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _checkpoint(path: Path, seed: int) -> Path:
    """A tiny random model whose forward pass agrees with its coder (:func:`coder_consistent`)."""
    torch.manual_seed(seed)
    save_checkpoint(path, coder_consistent(create_model("snr-decomp", **TINY)))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory, one_thread):
    """Two tiny checkpoints (different weights), a prepared model and one coded image."""
    root = tmp_path_factory.mktemp("codec")
    ckpt = _checkpoint(root / "a.pth", 0)
    other = _checkpoint(root / "b.pth", 1)
    model, fingerprint = codec.load_codec_model(ckpt)
    image = _image(0)
    write_image(root / "img.png", image)
    data = codec.encode_image(model, image, fingerprint=fingerprint, checkpoint=ckpt)
    return dict(root=root, ckpt=ckpt, other=other, model=model, fingerprint=fingerprint, image=image, data=data)


def _decode(env, data: bytes, **kwargs) -> np.ndarray:
    return codec.decode_bytes(data, env["model"], fingerprint=env["fingerprint"], **kwargs)


def _meta(data: bytes) -> dict:
    header = codec.read_header(data)
    return json.loads(data[14:header.body_offset - 4])


def _with_meta(data: bytes, record: dict, version: int = 3) -> bytes:
    """The file with its header JSON replaced and both checksums valid: tests the JSON checks."""
    return pack_raw(json.dumps(record).encode(), data[codec.read_header(data).body_offset:], version)


def _repack(env, strings) -> bytes:
    """The file's header with other strings, CRCs recomputed (damage before the checksums)."""
    return codec.pack(codec.read_header(env["data"]), strings)


def test_file_round_trip_reproduces_forward(env, capsys):
    """compress → decompress through files and the CLI (checkpoint found beside the file)."""
    root = env["root"]
    # float32 both ways, as forward runs (the default, auto, is bfloat16 on a CPU with AMX)
    assert main(["compress", str(root / "img.png"), str(root / "img.dic"), "-c", str(env["ckpt"]), "--precision", "float32"]) == 0
    assert main(["decompress", str(root / "img.dic"), str(root / "rec.png"), "--precision", "float32"]) == 0
    assert "bpp" in capsys.readouterr().out
    decoded = read_image(root / "rec.png")
    assert decoded.shape == (H, W, 3)
    with torch.no_grad():
        expected = quantize_8bit(env["model"](to_tensor(env["image"])[None])["x_hat"])[0]
    assert expected.std() > 0.02  # a real picture, not a constant
    diff = (to_tensor(decoded) - expected).abs().max().item() * 255
    assert diff <= 1.0 + 1e-4, f"decoded image differs from forward's x_hat by {diff} levels"
    assert (root / "img.dic").read_bytes() == env["data"]  # the CLI and the API write the same bytes
    assert np.array_equal(_decode(env, env["data"]), decoded)  # the API decodes what the CLI wrote
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_header_round_trip(env):
    header = codec.read_header(env["data"])
    model = env["model"]
    assert header.model == "snr-decomp" and header.version == codec.FORMAT_VERSION == 3
    assert header.hparams == codec.api._json_clean(model.hparams) and header.hparams["N"] == 16
    assert header.fingerprint == env["fingerprint"] == weights_fingerprint(model)
    assert (header.height, header.width) == (H, W)
    assert header.padding == (0, 128 - H, 0, 128 - W) and header.pad_multiple == model.pad_multiple
    assert header.checkpoint == "a.pth"  # the file name only: no folder of the encoding machine
    assert str(env["root"]) not in env["data"].decode("latin-1")
    assert header.body_offset + header.body_bytes == len(env["data"])
    # the latent checksums are those of the symbols model.compress returns
    with torch.no_grad():
        out = model.compress(to_tensor(env["image"])[None])
    assert header.latents == {key: {"shape": list(s.shape[1:]), "sha256": codec.latent_checksum(s[0], H, W)}
                              for key, s in zip("yz", out["symbols"])}
    assert header.latents["y"]["shape"] == [16, 8, 8] and header.latents["z"]["shape"] == [16, 2, 2]
    # pack() of the parsed header and strings rebuilds the file byte for byte
    parsed, strings = codec.unpack(env["data"])
    assert [len(s) for s in strings] == [1, 1] and strings == [[s[0]] for s in out["strings"]]
    assert codec.pack(parsed, strings) == env["data"]
    # a float CHW tensor and a uint8 CHW tensor code to the same file as the uint8 array
    tensor = to_tensor(env["image"])
    for image in (tensor, torch.from_numpy(env["image"]).permute(2, 0, 1)):
        assert codec.encode_image(model, image, fingerprint=env["fingerprint"], checkpoint=env["ckpt"]) == env["data"]


def test_latent_checksum_is_sha256_of_size_version_and_int32_symbols():
    symbols = torch.arange(-6, 6, dtype=torch.int32).reshape(3, 2, 2)
    expected = hashlib.sha256(np.array([70, 90, 3, *range(-6, 6)], dtype="<i4").tobytes()).hexdigest()[:32]
    assert codec.latent_checksum(symbols, 70, 90) == codec.latent_checksum(symbols[None], 70, 90) == expected
    assert codec.latent_checksum(symbols, 65, 90) != expected
    version_2 = hashlib.sha256(np.array([70, 90, *range(-6, 6)], dtype="<i4").tobytes()).hexdigest()[:32]
    assert codec.latent_checksum(symbols, 70, 90, version=2) == version_2  # as version-2 files store it


# ----------------------------------------------------------------------------- corrupt files


def _header_len(data: bytes) -> int:
    return struct.unpack_from(">I", data, 10)[0]


def _cut_points(data: bytes):
    length = _header_len(data)
    body = 18 + length
    return {
        "empty": (0, "is empty"),
        "in magic": (3, "inside the magic number"),
        "in length": (12, "inside the version and header length"),
        "in header": (14 + length // 2, "inside the header"),
        "after header": (14 + length, "inside the header checksum"),
        "after header crc": (body, r"the body has 0 of its \d+ bytes"),
        "in length prefix": (body + 3, r"the body has 3 of its"),
        "mid body": (body + (len(data) - body) // 2, "is truncated: the body has"),
        "last byte": (len(data) - 1, "is truncated: the body has"),
    }


@pytest.mark.parametrize("case", list(_cut_points(b"\x00" * 14)))
def test_truncated_files(env, case):
    cut, message = _cut_points(env["data"])[case]
    with pytest.raises(BitstreamError, match=message):
        _decode(env, env["data"][:cut], name="x.dic")


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x10
    return bytes(out)


def _spy_decompress(env, monkeypatch):
    calls = []
    monkeypatch.setattr(env["model"], "decompress", lambda *a, **k: calls.append(a))
    return calls


def test_flipped_bytes_never_reach_the_decoder(env, monkeypatch):
    data = env["data"]
    calls = _spy_decompress(env, monkeypatch)
    body = codec.read_header(data).body_offset
    cases = {
        14 + _header_len(data) // 2: "header checksum does not match",  # inside the JSON
        14 + _header_len(data) + 1: "header checksum does not match",  # the header CRC itself
        body + 2: "body checksum does not match",  # a string length prefix
        (body + len(data)) // 2: "body checksum does not match",  # inside a string
        len(data) - 1: "body checksum does not match",
    }
    for index, message in cases.items():
        with pytest.raises(BitstreamError, match=message):
            _decode(env, _flip(data, index))
    # a flipped header length shows up as a truncated or corrupt header
    with pytest.raises(BitstreamError, match="truncated|corrupt"):
        _decode(env, _flip(data, 12))
    assert calls == []


@pytest.mark.parametrize("latent", ["y", "z"])
def test_damaged_strings_with_valid_crcs_are_caught_by_the_latent_checksum(env, latent):
    """Damage made before the CRCs were computed passes every framing check; the decoded
    symbols then differ from the encoder's and no image is returned."""
    _, strings = codec.unpack(env["data"])
    index = 0 if latent == "y" else 1
    damaged = bytearray(strings[index][0])
    damaged[len(damaged) // 2] ^= 0x04
    strings[index] = [bytes(damaged)]
    with pytest.raises(BitstreamError, match=f"x.dic: the decoded {latent} latent does not match the encoder's") as info:
        _decode(env, _repack(env, strings), name="x.dic")
    message = str(info.value)
    assert "no image is returned" in message and "the strings or the header were damaged" in message
    assert f"Encoder: dic {codec.api.__version__}, torch {torch.__version__}" in message
    assert "this decoder: dic" in message and "device cpu" in message


def test_decode_stops_at_the_first_wrong_latent(env, monkeypatch):
    """A damaged z stops decoding before g_s runs."""
    _, strings = codec.unpack(env["data"])
    strings[1] = [bytes(b ^ 0xFF for b in strings[1][0])]
    ran = []
    monkeypatch.setattr(env["model"], "_synthesize", lambda y: ran.append("g_s"))
    with pytest.raises(BitstreamError, match="decoded z latent"):
        _decode(env, _repack(env, strings))
    assert ran == []


def test_wrong_magic_and_newer_version(env):
    data = env["data"]
    with pytest.raises(BitstreamError, match=r"png.dic is not a \.dic file"):
        codec.read_header(b"\x89PNG\r\n\x1a\n" + data[8:], name="png.dic")
    newer = data[:8] + struct.pack(">H", 4) + data[10:]
    with pytest.raises(BitstreamError, match=r"format version 4, newer than this program reads \(version 3\)"):
        _decode(env, newer)


# ----------------------------------------------------------------------------- header consistency


def test_header_json_is_validated(env):
    data = env["data"]
    meta = data[14:14 + _header_len(data)]
    with pytest.raises(BitstreamError, match="not valid JSON"):
        codec.read_header(pack_raw(meta[:-1], b""))
    with pytest.raises(BitstreamError, match="lacks the key.*fingerprint"):
        codec.read_header(pack_raw(meta.replace(b'"fingerprint"', b'"fingerprinz"'), b""))
    with pytest.raises(BitstreamError, match="not valid JSON"):
        codec.read_header(pack_raw(b"[" * 100000 + b"]" * 100000, b""))


@pytest.mark.parametrize("key,value,message", [
    ("height", "70", r"'height' is '70'; expected an integer ≥ 1"),
    ("height", True, r"'height' is True; expected an integer ≥ 1"),
    ("width", 0, r"'width' is 0; expected an integer ≥ 1"),
    ("width", -5, r"'width' is -5"),
    ("fingerprint", "AB" * 32, "64 lower-case hex digits"),
    ("fingerprint", "ab" * 31, "64 lower-case hex digits"),
    ("hparams", {"N": {"value": 16}}, "a flat object"),
    ("hparams", [16], "a flat object"),
    ("checkpoint", "/home/someone/a.pth", "a plain file name"),
    ("checkpoint", "../a.pth", "a plain file name"),
    ("pad_multiple", 96, "a multiple of 64"),
    ("padding", [0, 58, 0], "4 non-negative integers"),
    ("padding", [0, 122, 0, 38], r"'padding' is \[0, 122, 0, 38\], but a 70×90 image padded to a multiple of 64 has \[0, 58, 0, 38\]"),
    ("body_crc32", 1 << 32, "a 32-bit unsigned integer"),
    ("encoder", {"torch": 2}, "an object of strings"),
    ("latents", {"y": {"shape": [16, 8, 8], "sha256": "00"}}, "latents"),
])
def test_every_header_field_is_checked(env, key, value, message):
    record = {**_meta(env["data"]), key: value}
    with pytest.raises(BitstreamError, match=message):
        codec.read_header(_with_meta(env["data"], record), name="x.dic")


def test_unknown_header_keys_are_refused(env):
    record = {**_meta(env["data"]), "comment": "hello"}
    with pytest.raises(BitstreamError, match=r"unknown header key\(s\) 'comment' for format version 3.*newer dic"):
        codec.read_header(_with_meta(env["data"], record))


def test_header_must_agree_with_the_model(env, monkeypatch):
    calls = _spy_decompress(env, monkeypatch)
    record = _meta(env["data"])
    wrong_multiple = {**record, "pad_multiple": 128, "padding": [0, 58, 0, 38]}
    with pytest.raises(BitstreamError, match="'pad_multiple' is 128, but snr-decomp pads to 64"):
        _decode(env, _with_meta(env["data"], wrong_multiple))
    # 1×1 with a consistent padding: the latent shapes the header declares no longer fit
    one_pixel = {**record, "height": 1, "width": 1, "padding": [0, 63, 0, 63]}
    with pytest.raises(BitstreamError, match=r"latent y has shape \[16, 8, 8\], but snr-decomp codes a 1×1 image into \[16, 4, 4\]"):
        _decode(env, _with_meta(env["data"], one_pixel))
    assert calls == []
    # shapes made consistent too: the decoded symbols are not the encoder's
    latents = json.loads(json.dumps(record["latents"]))
    latents["y"]["shape"], latents["z"]["shape"] = [16, 4, 4], [16, 1, 1]
    monkeypatch.undo()
    with pytest.raises(BitstreamError, match="does not match the encoder's"):
        _decode(env, _with_meta(env["data"], {**one_pixel, "latents": latents}))
    # a size in the same padded block (the same latents, another crop) is caught by the checksum
    cropped = {**record, "height": 65, "padding": [0, 63, 0, 38]}
    with pytest.raises(BitstreamError, match="the decoded z latent does not match the encoder's for a 90×65 image"):
        _decode(env, _with_meta(env["data"], cropped))


@pytest.mark.parametrize("table,message", [
    (bytes([1]), "holds 1 latents, expected 2"),
    (bytes([3]), "holds 3 latents, expected 2"),
    (bytes([2]) + struct.pack(">I", 2), "latent y has 2 strings, expected 1"),
    (bytes([2]) + struct.pack(">I", 0), "latent y has 0 strings, expected 1"),
    (bytes([2]) + struct.pack(">II", 1, 0), "the y string has 0 bytes"),
    (bytes([2]) + struct.pack(">II", 1, 6) + b"\x00" * 6, "the y string has 6 bytes"),
    (bytes([2]) + struct.pack(">II", 1, 8) + b"\x00" * 8 + struct.pack(">II", 1, 1 << 30), "runs past its end"),
])
def test_string_tables_other_than_one_string_per_latent(env, table, message):
    record = {**_meta(env["data"]), "body_bytes": len(table), "body_crc32": zlib.crc32(table)}
    with pytest.raises(BitstreamError, match=message):
        codec.unpack(pack_raw(json.dumps(record).encode(), table))


# ----------------------------------------------------------------------------- limits


def _sized(env, h: int, w: int) -> bytes:
    record = {**_meta(env["data"]), "height": h, "width": w, "padding": [0, -h % 64, 0, -w % 64]}
    return _with_meta(env["data"], record)


def test_pixel_limit_is_checked_before_decoding(env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(codec.MAX_PIXELS_ENV, raising=False)
    calls = _spy_decompress(env, monkeypatch)
    for h, w in [(100000, 100000), (65536, 65536), (1, 1 << 25)]:  # a 1-pixel-high strip pads to 64 rows
        with pytest.raises(BitstreamError, match=r"x.dic declares a .* megapixels once padded.*limit of 25.2 megapixels.*--max-pixels"):
            _decode(env, _sized(env, h, w), name="x.dic")
    assert calls == []
    # the limit moves with max_pixels= and with the environment variable
    small = _sized(env, H, W)  # 128×128 once padded
    with pytest.raises(BitstreamError, match="limit of 0.0 megapixels"):
        codec.unpack(small, max_pixels=128 * 128 - 1)
    codec.unpack(small, max_pixels=128 * 128)
    monkeypatch.setenv(codec.MAX_PIXELS_ENV, str(128 * 128 - 1))
    with pytest.raises(BitstreamError, match="megapixels"):
        codec.unpack(small)
    assert codec.max_image_pixels(200000) == 200000
    monkeypatch.setenv(codec.MAX_PIXELS_ENV, "lots")
    with pytest.raises(OptionError, match="DIC_MAX_IMAGE_PIXELS is 'lots'"):
        codec.unpack(small)
    with pytest.raises(OptionError, match="max_pixels is 0"):
        codec.max_image_pixels(0)
    monkeypatch.delenv(codec.MAX_PIXELS_ENV)
    # the command line: --max-pixels
    src = tmp_path / "x.dic"
    src.write_bytes(env["data"])
    out = tmp_path / "x.png"
    assert main(["decompress", str(src), str(out), "-c", str(env["ckpt"]), "--max-pixels", "1000"]) == 2
    assert "limit of 0.0 megapixels" in capsys.readouterr().err and not out.exists()
    assert main(["decompress", str(src), str(out), "-c", str(env["ckpt"]), "--max-pixels", "16384"]) == 0


# ----------------------------------------------------------------------------- weights


def test_wrong_weights_name_both_fingerprints(env):
    other = codec.load_codec_model(env["other"])[1]
    with pytest.raises(BitstreamError, match="other snr-decomp weights") as info:
        codec.decode_bytes(env["data"], checkpoint=env["other"])
    assert env["fingerprint"] in str(info.value) and other in str(info.value)
    header = codec.read_header(env["data"])
    with pytest.raises(BitstreamError, match=r"hyper-parameters.*N=32 in the file vs 16"):
        codec.check_model(dataclasses.replace(header, hparams={**header.hparams, "N": 32}),
                          env["model"], env["fingerprint"])
    with pytest.raises(BitstreamError, match="made with model 'cheng2020-anchor'"):
        codec.check_model(dataclasses.replace(header, model="cheng2020-anchor"), env["model"], env["fingerprint"])


def test_checkpoint_search(env, tmp_path, monkeypatch, capsys):
    """-c, then --checkpoint-dir, then $DIC_CHECKPOINT_PATH, then beside the file; a candidate
    with other weights is skipped and named; without any, the error says what and where."""
    monkeypatch.delenv(codec.CHECKPOINT_PATH_ENV, raising=False)
    files, store, decoy, env_dir = (tmp_path / d for d in ("files", "store", "decoy", "env"))
    for folder in (files, store, decoy, env_dir):
        folder.mkdir()
    src = files / "x.dic"
    src.write_bytes(env["data"])
    (decoy / "a.pth").write_bytes(env["other"].read_bytes())  # the right name, other weights
    out = tmp_path / "x.png"
    expected = _decode(env, env["data"])

    assert main(["decompress", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"needs checkpoint 'a.pth' with weights fingerprint {env['fingerprint']}" in err
    assert f"{files} (beside the .dic file)" in err and "--checkpoint-dir or $DIC_CHECKPOINT_PATH" in err

    (store / "a.pth").write_bytes(env["ckpt"].read_bytes())
    assert main(["decompress", str(src), str(out), "--checkpoint-dir", str(decoy), "--checkpoint-dir", str(store),
                 "--precision", "float32"]) == 0
    assert np.array_equal(read_image(out), expected)
    out.unlink()  # decompress replaces no existing file (without --force)

    monkeypatch.setenv(codec.CHECKPOINT_PATH_ENV, f"{decoy}{os.pathsep}{env_dir}")
    assert main(["decompress", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"skipped: {decoy / 'a.pth'} (other weights: fingerprint" in err
    assert f"{env_dir} ($DIC_CHECKPOINT_PATH)" in err
    (env_dir / "a.pth").write_bytes(env["ckpt"].read_bytes())
    assert main(["decompress", str(src), str(out), "--precision", "float32"]) == 0
    assert np.array_equal(read_image(out), expected)

    monkeypatch.delenv(codec.CHECKPOINT_PATH_ENV)
    (files / "a.pth").write_bytes(env["ckpt"].read_bytes())
    assert np.array_equal(codec.decode_bytes(env["data"], beside=src), expected)
    # -c wins and is not searched around: other weights are an error naming both fingerprints
    with pytest.raises(BitstreamError, match="other snr-decomp weights"):
        codec.decode_bytes(env["data"], checkpoint=env["other"], beside=src)


def test_unrecorded_checkpoint_needs_c(env):
    unrecorded = codec.encode_image(env["model"], env["image"], fingerprint=env["fingerprint"])
    assert codec.read_header(unrecorded).checkpoint is None
    with pytest.raises(CheckpointError, match=f"records no checkpoint name.*{env['fingerprint']}.*-c CHECKPOINT"):
        codec.decode_bytes(unrecorded)
    assert codec.decode_bytes(unrecorded, checkpoint=env["ckpt"]).shape == (H, W, 3)


# ----------------------------------------------------------------------------- version 1


def _version_2(env) -> bytes:
    """The image coded as a version-2 file (the float entropy path, the only one older files use)."""
    return codec.encode_image(env["model"], env["image"], fingerprint=env["fingerprint"], checkpoint=env["ckpt"],
                              version=2)


def _version_1(env, checkpoint: str) -> bytes:
    v2 = _version_2(env)
    header = dataclasses.replace(codec.read_header(v2), version=1, latents=None, checkpoint=checkpoint)
    return codec.pack(header, codec.unpack(v2)[1])


def test_version_1_files_decode_with_a_warning(env, tmp_path):
    """A version-1 file (no latent checksums, an absolute checkpoint path) still decodes, the
    recorded path is tried, and a warning says it cannot be verified."""
    elsewhere = tmp_path / "kept" / "old.pth"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(env["ckpt"].read_bytes())
    data = _version_1(env, str(elsewhere))
    assert codec.read_header(data).version == 1
    with pytest.warns(UserWarning, match="version-1 .dic file, which stores no latent checksums"):
        image = codec.decode_bytes(data, beside=tmp_path / "x.dic")
    assert np.array_equal(image, _decode(env, _version_2(env)))
    elsewhere.unlink()
    with pytest.raises(CheckpointError, match=f"needs checkpoint 'old.pth'.*{elsewhere.parent} \\(the path the version-1 file records\\)"):
        codec.decode_bytes(data, beside=tmp_path / "x.dic")
    # a version-1 header with version-2 keys is refused (a bit flip cannot downgrade verification)
    record = {**_meta(data), "latents": _meta(env["data"])["latents"]}
    with pytest.raises(BitstreamError, match="unknown header key.*'latents' for format version 1"):
        codec.read_header(_with_meta(data, record, version=1))


# ----------------------------------------------------------------------------- determinism


def test_decoding_is_independent_of_the_thread_count(env):
    """Files encoded with 1 and 4 threads both decode to the same image with 1, 2 and 4
    threads (the latent checksum verifies each decode)."""
    before = torch.get_num_threads()
    try:
        for enc_threads in (1, 4):
            torch.set_num_threads(enc_threads)
            data = codec.encode_image(env["model"], _image(3, 130, 70), fingerprint=env["fingerprint"])
            images = []
            for dec_threads in (1, 2, 4):
                torch.set_num_threads(dec_threads)
                images.append(_decode(env, data))
            assert all(np.array_equal(images[0], other) for other in images[1:]), enc_threads
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before


_SUBPROCESS = """
import sys, torch, numpy as np
torch.set_num_threads(int(sys.argv[1]))
from dic import codec
model, fp = codec.load_codec_model(sys.argv[2])
if sys.argv[3] == "encode":
    image = np.load(sys.argv[4])
    open(sys.argv[5], "wb").write(codec.encode_image(model, image, fingerprint=fp))
else:
    np.save(sys.argv[5], codec.decode_bytes(open(sys.argv[4], "rb").read(), model, fingerprint=fp))
"""


def test_decoding_in_fresh_processes_with_other_thread_counts(env, tmp_path):
    """The same across processes whose thread pools were sized differently from the start."""
    np.save(tmp_path / "img.npy", _image(4, 64, 100))

    def run(threads: int, *args: str) -> None:
        subprocess.run([sys.executable, "-c", _SUBPROCESS, str(threads), str(env["ckpt"]), *args], check=True)

    run(2, "encode", str(tmp_path / "img.npy"), str(tmp_path / "x.dic"))
    run(1, "decode", str(tmp_path / "x.dic"), str(tmp_path / "one.npy"))
    run(4, "decode", str(tmp_path / "x.dic"), str(tmp_path / "four.npy"))
    one, four = np.load(tmp_path / "one.npy"), np.load(tmp_path / "four.npy")
    assert np.array_equal(one, four)
    assert np.array_equal(one, _decode(env, (tmp_path / "x.dic").read_bytes()))


@pytest.mark.cuda
def test_cuda_encoded_files_decode_on_the_cpu_or_are_refused(env):
    """Encode on CUDA, decode on the CPU and on CUDA: the latents are verified in each case,
    so the result is the image (equal up to g_s's float rounding between devices) or an error,
    never a silent wrong picture."""
    cuda_model, fingerprint = codec.load_codec_model(env["ckpt"], device="cuda")
    assert fingerprint == env["fingerprint"]
    data = codec.encode_image(cuda_model, env["image"], fingerprint=fingerprint)
    assert codec.read_header(data).encoder["device"] == "cuda"
    on_cuda = codec.decode_bytes(data, cuda_model, fingerprint=fingerprint)
    try:
        on_cpu = _decode(env, data)
    except BitstreamError as exc:
        assert "does not match the encoder's" in str(exc) and "device cuda" in str(exc)
    else:
        assert np.abs(on_cpu.astype(int) - on_cuda.astype(int)).max() <= 1
    cpu_data = env["data"]
    assert np.abs(codec.decode_bytes(cpu_data, cuda_model, fingerprint=fingerprint).astype(int)
                  - _decode(env, cpu_data).astype(int)).max() <= 1


# ----------------------------------------------------------------------------- command line


def test_folders(env, tmp_path, capsys):
    images = tmp_path / "images"
    write_image(images / "a.png", _image(1, 64, 48))
    write_image(images / "sub" / "b.png", _image(2, 33, 70))
    (images / "notes.txt").write_text("not an image")
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    assert main(["compress", str(images), str(coded), "-c", str(env["ckpt"])]) == 0
    assert sorted(p.relative_to(coded).as_posix() for p in coded.rglob("*") if p.is_file()) == ["a.dic", "sub/b.dic"]
    assert main(["decompress", str(coded), str(decoded), "-c", str(env["ckpt"])]) == 0
    assert read_image(decoded / "a.png").shape == (64, 48, 3)
    assert read_image(decoded / "sub" / "b.png").shape == (33, 70, 3)
    # one bad file in a folder: the others are still written, the command fails with exit code 2
    (coded / "a.dic").write_bytes(b"hello")
    (decoded / "sub" / "b.png").unlink()
    assert main(["decompress", str(coded), str(decoded), "--checkpoint-dir", str(env["root"]), "--force"]) == 2
    err = capsys.readouterr().err
    assert "a.dic is not a .dic file" in err and "1 of 2 files" in err
    assert (decoded / "sub" / "b.png").is_file()


def test_cli_bad_file_exits_2(env, tmp_path, capsys):
    bad = tmp_path / "bad.dic"
    bad.write_bytes(env["data"][:100])
    out = tmp_path / "out.png"
    assert main(["decompress", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and f"{bad} is truncated" in err
    assert not out.exists()
    assert main(["compress", str(tmp_path / "missing.png"), str(bad), "-c", str(env["ckpt"])]) == 2
    assert "missing.png does not exist" in capsys.readouterr().err
    assert main(["decompress", str(bad), str(out), "--device", "tpu"]) == 2
    assert "--device: expected cpu or cuda" in capsys.readouterr().err
