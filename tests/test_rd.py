"""Bjøntegaard deltas against hand-computed values, and the plot / bdrate commands."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.interpolate import pchip_interpolate

from dic.apps.cli import main as dic_main
from dic.apps.evaluate.rd import bd_between, bd_psnr, bd_rate, curve, load_report, plot_reports
from dic.errors import DicError

RATES = np.array([0.1, 0.2, 0.4, 0.8])
PSNRS = np.array([28.0, 30.5, 32.5, 34.0])


def write_report(path, name, bpp, psnr, **extra):
    results = {"bpp": list(map(float, bpp)), "psnr": list(map(float, psnr)), **extra}
    path.write_text(json.dumps({"name": name, "description": "test", "results": results}))
    return path


def test_rates_scaled_by_09_is_minus_10_percent():
    assert bd_rate(RATES, PSNRS, 0.9 * RATES, PSNRS) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(RATES, PSNRS, 1.25 * RATES, PSNRS) == pytest.approx(25.0, abs=1e-9)
    # and the reverse direction is the inverse factor
    assert bd_rate(0.9 * RATES, PSNRS, RATES, PSNRS) == pytest.approx((1 / 0.9 - 1) * 100, abs=1e-9)


def test_psnr_shifted_by_one_db_is_plus_one():
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS + 1.0) == pytest.approx(1.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS - 0.25) == pytest.approx(-0.25, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-12)


def test_two_point_curves_match_hand_computation():
    """With two points PCHIP is the straight line. A: ln r = ln4·(D − 30)/4 on D ∈ [30, 34];
    B is A shifted up 1 dB. Over the common quality range [31, 34] the mean log-rate
    difference is −ln4/4, so BD-rate = 4^(−1/4) − 1 = −29.289 %; at equal rate B gains 1 dB."""
    r, d = [1.0, 4.0], [30.0, 34.0]
    assert bd_rate(r, d, r, [31.0, 35.0]) == pytest.approx((4 ** -0.25 - 1) * 100, abs=1e-9)
    assert bd_rate(r, d, r, [31.0, 35.0]) == pytest.approx(-29.2893, abs=1e-4)
    assert bd_psnr(r, d, r, [31.0, 35.0]) == pytest.approx(1.0, abs=1e-12)
    # B halves the rate at the low end only: ln r_B = ln r_A − ln2·(34 − D)/4 on [30, 34];
    # mean over [30, 34] of −ln2·(34 − D)/4 = −ln2/2 → BD-rate = 2^(−1/2) − 1
    assert bd_rate(r, d, [0.5, 4.0], d) == pytest.approx((2 ** -0.5 - 1) * 100, abs=1e-9)


def test_piecewise_cubic_matches_sampled_reference():
    """The exact PCHIP integral agrees with the sampled (trapezoid over 100 points) form of
    the common reference implementations."""
    r2, d2 = np.array([0.09, 0.21, 0.35, 0.9]), np.array([28.3, 30.1, 32.9, 34.5])
    lo, hi = max(PSNRS.min(), d2.min()), min(PSNRS.max(), d2.max())
    samples = np.linspace(lo, hi, 100)
    v1 = pchip_interpolate(PSNRS, np.log(RATES), samples)
    v2 = pchip_interpolate(d2, np.log(r2), samples)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy 2.4 removed trapz
    reference = (math.exp((trapezoid(v2, samples) - trapezoid(v1, samples)) / (hi - lo)) - 1) * 100
    assert bd_rate(RATES, PSNRS, r2, d2) == pytest.approx(reference, abs=0.01)


def test_bad_curves_give_clear_errors():
    with pytest.raises(DicError, match="do not overlap"):
        bd_rate([0.1, 0.2], [20.0, 22.0], [0.1, 0.2], [30.0, 32.0])
    with pytest.raises(DicError, match="at least 2 points"):
        bd_rate([0.1], [30.0], RATES, PSNRS)
    with pytest.raises(DicError, match="rates must be positive"):
        bd_psnr([0.0, 0.1], [30.0, 31.0], RATES, PSNRS)
    with pytest.raises(DicError, match="curve B: quality must rise strictly with rate"):
        bd_rate(RATES, PSNRS, [0.1, 0.2, 0.3], [30.0, 30.0, 31.0])
    with pytest.raises(DicError, match="curve A: quality must rise strictly with rate"):
        bd_psnr([0.1, 0.2, 0.3], [30.0, 31.0, 30.5], RATES, PSNRS)
    # unsorted but monotone points are fine
    assert bd_rate(RATES[::-1], PSNRS[::-1], 0.9 * RATES, PSNRS) == pytest.approx(-10.0, abs=1e-9)


def test_bdrate_command_prints_both_deltas(tmp_path, capsys):
    a = write_report(tmp_path / "a.json", "anchor", RATES, PSNRS)
    b = write_report(tmp_path / "b.json", "ours", 0.9 * RATES, PSNRS)
    assert dic_main(["bdrate", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "ours against anchor" in out and "BD-rate -10.00 %" in out and "BD-PSNR +0.3" in out


def test_ms_ssim_db_is_derived_and_missing_metric_named(tmp_path):
    path = write_report(tmp_path / "m.json", "m", [0.2, 0.1], [31, 29], **{"ms-ssim": [0.99, 0.9]})
    rate, db = curve(load_report(path), "ms-ssim-db")
    assert rate.tolist() == [0.1, 0.2]  # sorted by rate
    assert db.tolist() == pytest.approx([10.0, 20.0])
    no_gt = tmp_path / "no_gt.json"
    no_gt.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2]}}))
    with pytest.raises(DicError, match=r"no_gt.json: results have no 'psnr' list"):
        curve(load_report(no_gt), "psnr")


def test_plot_writes_png(tmp_path, capsys):
    a = write_report(tmp_path / "a.json", "anchor", RATES, PSNRS, **{"ms-ssim": [0.9, 0.93, 0.95, 0.97]})
    b = write_report(tmp_path / "b.json", "ours", 0.8 * RATES, PSNRS + 0.5, **{"ms-ssim": [0.91, 0.94, 0.96, 0.975]})
    out = tmp_path / "plots" / "rd.png"
    assert dic_main(["plot", str(a), str(b), "-o", str(out), "--metric", "ms-ssim-db"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert Image.open(out).size[0] >= 600
    assert not [p for p in out.parent.iterdir() if p.name != "rd.png"]  # no temp files left
    ax = plot_reports([a, b])
    assert [line.get_label() for line in ax.get_lines()] == ["anchor", "ours"]


def test_plot_and_bdrate_bad_input_exit_2(tmp_path, capsys):
    assert dic_main(["plot", str(tmp_path / "none.json"), "-o", str(tmp_path / "x.png")]) == 2
    assert "none.json: report not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    a = write_report(tmp_path / "a.json", "anchor", RATES, PSNRS)
    assert dic_main(["bdrate", str(a), str(bad)]) == 2
    assert "bad.json: not a JSON report" in capsys.readouterr().err


def test_bdrate_on_a_non_monotone_curve_names_the_files(tmp_path, capsys):
    a = write_report(tmp_path / "a.json", "anchor", RATES, PSNRS)
    b = write_report(tmp_path / "b.json", "saturated", RATES, [28.0, 30.0, 29.5, 29.0])
    assert dic_main(["bdrate", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "curve B: quality must rise strictly with rate" in err and f"B = {b}" in err


def test_bdrate_refuses_mixed_protocols_unless_allowed(tmp_path, capsys):
    """Figures of different test protocols are not comparable: an error naming both files and
    protocols, unless --allow-mixed-protocols; a report without the field counts as pad."""
    a = write_report(tmp_path / "a.json", "anchor", RATES, PSNRS)
    official = tmp_path / "official.json"
    official.write_text(json.dumps({"name": "ours", "protocol": "official",
                                    "results": {"bpp": list(0.9 * RATES), "psnr": list(PSNRS)}}))
    assert dic_main(["bdrate", str(a), str(official)]) == 2
    err = capsys.readouterr().err
    assert f"{a} (protocol 'pad', no 'protocol' field: treated as 'pad')" in err
    assert f"{official} (protocol 'official')" in err and "--allow-mixed-protocols" in err

    assert dic_main(["bdrate", str(a), str(official), "--allow-mixed-protocols"]) == 0
    captured = capsys.readouterr()
    assert "BD-rate -10.00 %" in captured.out and "different test protocols" in captured.err

    padded = tmp_path / "pad.json"
    padded.write_text(json.dumps({"name": "ours", "protocol": "pad",
                                  "results": {"bpp": list(0.9 * RATES), "psnr": list(PSNRS)}}))
    assert dic_main(["bdrate", str(a), str(padded)]) == 0  # missing field = pad
    assert "BD-rate -10.00 %" in capsys.readouterr().out
    with pytest.raises(DicError, match="different test protocols"):
        bd_between(load_report(official), load_report(padded))
    assert bd_between(load_report(official), load_report(padded), allow_mixed_protocols=True)["bd_rate"] \
        == pytest.approx(0.0, abs=1e-9)
