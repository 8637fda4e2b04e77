"""train.soup: WiSE-FT weight interpolation between a fine-tuned model and the model it started from."""
import pytest
import torch

from models import CheckpointError, get_spec
from train.soup import embedded_base, interpolate


def _models():
    torch.manual_seed(0)
    tuned = get_spec("flashsr_real_x2").build(channels=8, blocks=2).eval()
    with torch.no_grad():  # a fine-tune that moved the strength MLP's zero-initialised output layer too
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    base = get_spec("flashsr_x2").build(channels=8, blocks=2).eval()
    fresh = get_spec("flashsr_real_x2").build(channels=8, blocks=2)
    return tuned, base, fresh


def test_the_ends_are_the_tuned_and_the_base_model_and_the_middle_is_neither():
    tuned, base, fresh = _models()
    t, b = tuned.state_dict(), embedded_base(tuned.state_dict(), base.state_dict(), fresh.state_dict())
    x, s = torch.rand(2, 3, 12, 10), torch.tensor([[0.2], [0.9]])
    model = get_spec("flashsr_real_x2").build(channels=8, blocks=2).eval()
    with torch.no_grad():
        want_tuned, want_base = tuned(x, strength=s), base(x)
        model.load_state_dict(interpolate(t, b, 0.0))
        assert torch.equal(model(x, strength=s), want_tuned)
        model.load_state_dict(interpolate(t, b, 1.0))
        assert torch.allclose(model(x, strength=s), want_base, atol=1e-6)  # the strength input does nothing
        model.load_state_dict(interpolate(t, b, 0.3))
        middle = model(x, strength=s)
    assert not torch.allclose(middle, want_tuned) and not torch.allclose(middle, want_base)


def test_a_base_of_another_shape_is_refused_by_name():
    tuned, _, fresh = _models()
    other = get_spec("flashsr_x2").build(channels=16, blocks=2).state_dict()
    with pytest.raises(CheckpointError, match="not the same architecture"):
        embedded_base(tuned.state_dict(), other, fresh.state_dict())
