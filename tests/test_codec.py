"""The .dic codec: file round trip against ``forward``, the header, every corrupt-file case,
wrong weights, missing checkpoints, folders, and the command line's exit code."""
from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dic import codec
from dic.apps.cli import main
from dic.data.io import read_image, to_tensor, write_image
from dic.errors import BitstreamError, CheckpointError
from dic.metrics import quantize_8bit
from dic.models import create_model
from dic.checkpoints import save_checkpoint, weights_fingerprint

TINY = dict(N=16, num_layers=1, num_heads=2, head_dim=8, token_patch=4, local_blocks=[1, 1], nonlocal_blocks=1)
H, W = 70, 90  # not multiples of 64: exercises padding and cropping


def _image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth noisy test picture (gradients + noise), uint8 H×W×3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=2) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _checkpoint(path: Path, seed: int) -> Path:
    """A tiny random model whose forward pass must agree with its coder. CompressAI's forward
    rounds y while the coder rounds y − μ and adds μ back, which on untrained weights changes
    the image a lot; zeroing the predicted means μ makes both round alike. y is scaled up so
    the latent is not all zeros, and g_s's output shifted into (0, 1) so clamping hides nothing."""
    torch.manual_seed(seed)
    model = create_model("snr-decomp", **TINY)
    with torch.no_grad():
        last = model.entropy_parameters[-1]  # outputs (scales, means)
        last.weight[last.out_channels // 2:] = 0
        last.bias[last.out_channels // 2:] = 0
        model.g_a_block2[-1].weight *= 8
        model.g_s[-1][0].weight *= 0.2
        model.g_s[-1][0].bias += 0.5
    save_checkpoint(path, model)
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


def test_file_round_trip_reproduces_forward(env, capsys):
    """compress → decompress through files and the CLI (checkpoint taken from the file)."""
    root = env["root"]
    assert main(["compress", str(root / "img.png"), str(root / "img.dic"), "-c", str(env["ckpt"])]) == 0
    assert main(["decompress", str(root / "img.dic"), str(root / "rec.png")]) == 0
    assert "bpp" in capsys.readouterr().out
    decoded = read_image(root / "rec.png")
    assert decoded.shape == (H, W, 3)
    with torch.no_grad():
        expected = quantize_8bit(env["model"](to_tensor(env["image"])[None])["x_hat"])[0]
    assert expected.std() > 0.02  # a real picture, not a constant
    diff = (to_tensor(decoded) - expected).abs().max().item() * 255
    assert diff <= 1.0 + 1e-4, f"decoded image differs from forward's x_hat by {diff} levels"
    assert (root / "img.dic").read_bytes() == env["data"]  # the CLI and the API write the same bytes
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_header_round_trip(env):
    header = codec.read_header(env["data"])
    model = env["model"]
    assert header.model == "snr-decomp" and header.version == codec.FORMAT_VERSION
    assert header.hparams == codec.api._json_clean(model.hparams) and header.hparams["N"] == 16
    assert header.fingerprint == env["fingerprint"] == weights_fingerprint(model)
    assert (header.height, header.width) == (H, W)
    assert header.padding == (0, 128 - H, 0, 128 - W) and header.pad_multiple == model.pad_multiple
    assert header.checkpoint == str(env["ckpt"].resolve())
    assert header.body_offset + header.body_bytes == len(env["data"])
    # pack() of the parsed header and strings rebuilds the file byte for byte
    parsed, strings = codec.unpack(env["data"])
    assert [len(s) for s in strings] == [1, 1] and all(len(s[0]) > 0 for s in strings)
    assert codec.pack(parsed, strings) == env["data"]
    # a float CHW tensor codes to the same file as the uint8 array it came from
    tensor = to_tensor(env["image"])
    assert codec.encode_image(model, tensor, fingerprint=env["fingerprint"], checkpoint=env["ckpt"]) == env["data"]


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
        codec.decode_bytes(env["data"][:cut], env["model"], fingerprint=env["fingerprint"], name="x.dic")


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x10
    return bytes(out)


def test_flipped_bytes_never_reach_the_decoder(env, monkeypatch):
    data, model = env["data"], env["model"]
    calls = []
    monkeypatch.setattr(model, "decompress", lambda *a, **k: calls.append(a))
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
            codec.decode_bytes(_flip(data, index), model, fingerprint=env["fingerprint"])
    # a flipped header length shows up as a truncated or corrupt header
    with pytest.raises(BitstreamError, match="truncated|corrupt"):
        codec.decode_bytes(_flip(data, 12), model, fingerprint=env["fingerprint"])
    assert calls == []


def _with_header(data: bytes, meta: bytes) -> bytes:
    """The file with its header JSON replaced and both checksums valid: tests the JSON checks."""
    body = data[codec.read_header(data).body_offset:]
    head = struct.pack(">8sHI", codec.MAGIC, 1, len(meta)) + meta
    return head + struct.pack(">I", zlib.crc32(head)) + body


def test_header_json_is_validated(env):
    data = env["data"]
    meta = data[14:14 + _header_len(data)]
    with pytest.raises(BitstreamError, match="not valid JSON"):
        codec.read_header(_with_header(data, meta[:-1]))
    with pytest.raises(BitstreamError, match="lacks the key.*fingerprint"):
        codec.read_header(_with_header(data, meta.replace(b'"fingerprint"', b'"fingerprinz"')))
    with pytest.raises(BitstreamError, match="'height' is .*wrong type"):
        codec.read_header(_with_header(data, meta.replace(b'"height":70', b'"height":"70"')))


def test_wrong_magic_and_newer_version(env, tmp_path):
    data = env["data"]
    with pytest.raises(BitstreamError, match=r"png.dic is not a \.dic file"):
        codec.read_header(b"\x89PNG\r\n\x1a\n" + data[8:], name="png.dic")
    newer = data[:8] + struct.pack(">H", codec.FORMAT_VERSION + 1) + data[10:]
    with pytest.raises(BitstreamError, match=r"format version 2, newer than this program reads \(version 1\)"):
        codec.decode_bytes(newer, env["model"], fingerprint=env["fingerprint"])


def test_wrong_weights_name_both_fingerprints(env, tmp_path):
    src = tmp_path / "img.dic"
    src.write_bytes(env["data"])
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


def test_missing_checkpoint(env, tmp_path):
    unrecorded = codec.encode_image(env["model"], env["image"], fingerprint=env["fingerprint"])
    with pytest.raises(CheckpointError, match="records no checkpoint path"):
        codec.decode_bytes(unrecorded)
    gone = tmp_path / "gone.pth"
    gone.write_bytes(env["ckpt"].read_bytes())
    data = codec.encode_image(env["model"], env["image"], fingerprint=env["fingerprint"], checkpoint=gone)
    gone.unlink()
    with pytest.raises(CheckpointError, match=f"{gone}, which no longer exists.*{env['fingerprint']}"):
        codec.decode_bytes(data)
    # given explicitly, the checkpoint decodes the same file
    assert codec.decode_bytes(data, checkpoint=env["ckpt"]).shape == (H, W, 3)


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
    assert main(["decompress", str(coded), str(decoded)]) == 2
    err = capsys.readouterr().err
    assert "a.dic is not a .dic file" in err and "1 of 2 files" in err
    assert (decoded / "sub" / "b.png").is_file()


def test_cli_bad_file_exits_2(env, tmp_path, capsys):
    bad = tmp_path / "bad.dic"
    bad.write_bytes(env["data"][:100])
    out = tmp_path / "out.png"
    assert main(["decompress", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad} is truncated" in err
    assert not out.exists()
    assert main(["compress", str(tmp_path / "missing.png"), str(bad), "-c", str(env["ckpt"])]) == 2
    assert "missing.png does not exist" in capsys.readouterr().err
