"""The dic command: registry listings and error handling."""
import pytest

from dic.apps.cli import main


def test_list_models(capsys):
    assert main(["list", "models"]) == 0
    assert capsys.readouterr().out.split() == ["cheng2020-anchor", "multiscale-decomp", "snr-decomp"]


def test_list_datasets_and_losses(capsys):
    assert main(["list", "datasets"]) == 0
    assert {"synthetic", "synthetic-test", "sidd", "folder"} <= set(capsys.readouterr().out.split())
    assert main(["list", "losses"]) == 0
    assert set(capsys.readouterr().out.split()) == {"mse", "ms-ssim", "l1", "l2"}


def test_unknown_subcommand_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["lst"])
    assert info.value.code == 2
    assert "invalid choice: 'lst'" in capsys.readouterr().err


def test_user_error_prints_one_line_and_exits_2(tmp_path, capsys):
    assert main(["train", "-opt", str(tmp_path / "missing.yml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.yml: option file not found" in err
    assert "Traceback" not in err
