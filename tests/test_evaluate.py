"""evaluate/: the shared pieces (model selection, the one model runner, tables) and the train.evaluate alias."""
import numpy as np
import pytest
import torch

from evaluate.common import markdown_table, model_runner, select_models
from models import get_spec, save_checkpoint


def test_select_models_all_and_wrong_task():
    names = select_models("all", "interpolate", "blend")
    assert names[-1] == "blend" and set(names[:-1]) <= {"flowinterp", "flowinterp_wide", "convlstm_interp"}
    assert select_models("all", "colorize", "grey", baseline_first=True)[0] == "grey"
    with pytest.raises(SystemExit, match="is a sr model, not colorize"):
        select_models("flashsr_x2", "colorize", "grey")


def test_model_runner_pads_to_the_multiple_and_crops_back(tmp_path):
    spec = get_spec("grey2rgb_mse")  # pad multiple 8
    torch.manual_seed(0)
    model = spec.build().eval()
    path = tmp_path / "g.safetensors"
    save_checkpoint(path, model, arch=spec.arch, args=spec.kwargs)
    grey = np.random.default_rng(0).random((13, 21, 1), dtype=np.float32)
    out = model_runner(spec.name, path)(grey)
    assert out.shape == (13, 21, 3) and 0 <= out.min() and out.max() <= 1
    padded = torch.nn.functional.pad(torch.from_numpy(grey.transpose(2, 0, 1))[None], (0, 3, 0, 3), mode="reflect")
    with torch.inference_mode():
        want = model(padded).clamp(0, 1)[0, :, :13, :21].numpy().transpose(1, 2, 0)
    assert np.allclose(out, want, atol=1e-6)


def test_markdown_table_shape():
    table = markdown_table(["model", "Set5"], [["a", "1.00"]]).splitlines()
    assert table == ["| model | Set5 |", "|---|---|", "| a | 1.00 |"]


def test_train_evaluate_is_a_deprecated_alias(capsys):
    from train.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "deprecated" in captured.err and "python -m evaluate" in captured.out


def test_main_leaves_autograd_on(tmp_path, monkeypatch, capsys):
    """main() runs inside other programs (tests): it must not switch autograd off for them."""
    from PIL import Image

    from evaluate.cli import main

    folder = tmp_path / "benchmark" / "Tiny"
    folder.mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8)).save(folder / "a.png")
    monkeypatch.setenv("STSR_DATA", str(tmp_path))
    assert main(["--task", "sr", "--model", "bicubic", "--scale", "2", "--sets", "Tiny", "--json"]) == 0
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("args, message", [
    (["--model", "colorize_lab", "--task", "colorize", "--limit", "-1"], "--limit must be 0"),  # was: all but the last
    (["--model", ""], "--model is empty"),  # was: nothing, exit 0
    (["--model", "bicubic", "--scale", "0"], "--scale must be 2 or 4"),  # was: 2 and 4 silently
    (["--model", "bicubic", "--device", "bogus"], "is not available here"),  # was: a torch traceback
    (["--task", "colorize", "--model", "colorize_lab", "--vividness", "9"], "values must be in 0..2.5"),
    (["--model", "bicubic", "--precision", "fp8"], "--precision: precision must be one of"),
    (["--task", "uncertainty", "--model", "flashsr_x2", "--backend", "bogus"], "--backend 'bogus' is not one of"),
    (["--task", "uncertainty", "--model", "flashsr_x2", "--seed", "-1"], "--seed must be 0 or more"),
    (["--model", "bicubic", "--markdown", "--bench-json", "/no/such.json"], "no such file"),  # was: after the run
])
def test_cli_refuses_bad_arguments_with_a_sentence(args, message, capsys):
    from evaluate.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code not in (0, None) and message in (capsys.readouterr().err + str(exc.value.code))
