"""The SR tab's model list: the real-photo model first (the default), its GAN variant next, labelled."""
from ui.sr_options import PHOTO_FAMILY, family_label, sr_families


def test_photo_models_lead_the_list_and_say_what_they_are():
    families = list(sr_families())
    assert families[0] == PHOTO_FAMILY
    assert families[1] == "flashsr_real_gan"
    assert family_label(PHOTO_FAMILY).startswith("Photo (real-world")
    assert family_label("flashsr_real_gan").startswith("Photo, sharper texture (GAN")
    assert family_label("flashsr").startswith("Clean / benchmark")


def test_with_outscale_the_summary_and_files_name_the_model_that_ran(upload_dir):
    """x4 asked, outscale 1.5: flashsr_x2 runs (then a resize); the summary described and the files were named
    after flashsr_x4 (an API bug hunt)."""
    import numpy as np
    from PIL import Image

    from models import get_spec
    from ui.sr_tab import upscale_image

    if not (get_spec("flashsr_x2").has_weights() and get_spec("flashsr_x4").has_weights()):
        return
    path = upload_dir / "rgb.png"
    Image.fromarray((np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)).save(path)
    (_, after), download, summary, info = upscale_image(str(path), "flashsr", 4, 0, "onnx", False, "png", 95, 1.5,
                                                        progress=None)
    assert info["model"] == "flashsr_x2" and Image.open(after).size == (48, 36)
    assert "flashsr_x2" in after and "flashsr_x2" in download and get_spec("flashsr_x2").description in summary
