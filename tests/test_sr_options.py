"""The SR tab's model list: the real-photo model first (the default), its GAN variant next, labelled."""
from ui.sr_options import PHOTO_FAMILY, family_label, sr_families


def test_photo_models_lead_the_list_and_say_what_they_are():
    families = list(sr_families())
    assert families[0] == PHOTO_FAMILY
    assert families[1] == "flashsr_real_gan"
    assert family_label(PHOTO_FAMILY).startswith("Photo (real-world")
    assert family_label("flashsr_real_gan").startswith("Photo, sharper texture (GAN")
    assert family_label("flashsr").startswith("Clean / benchmark")
