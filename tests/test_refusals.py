"""Issue #22 §3 through the live app: every parameter is validated (not coerced by truthiness), what
view_api() advertises is accepted, refusals are one log line without a traceback, and the next request
still works after each."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TENTS = EXAMPLES / "sr_tents_lr.png"


def _still_serving(client):
    (_, after), _, _, info = client.predict(handle_file(str(TENTS)), "flashsr", 2, 256, "auto", False,
                                            api_name="/upscale")
    assert info["output_size"][0] > 0


@pytest.mark.parametrize("compare, scale, message", [
    ("false", 2, "'compare' must be true or false, not 'false'"),
    (1, 2, "'compare' must be true or false, not 1"),
    (None, 2, "'compare' must be true or false, not None"),
    (False, None, "'scale' must be one of 2, 4, not None"),
    (False, "three", "'scale' must be one of 2, 4, not 'three'"),
])
def test_booleans_and_numbers_are_validated_not_coerced(client, compare, scale, message):
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(handle_file(str(TENTS)), "flashsr", scale, 256, "auto", compare, api_name="/upscale")
    _still_serving(client)


def _advertised(client, api_name: str, parameter: str) -> list:
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
    param = next(p for p in info["parameters"] if p["parameter_name"] == parameter)
    found = re.findall(r"'([^']*)'", param["python_type"]["type"]) or param["type"].get("enum", [])
    assert found, param
    return found


def test_what_view_api_advertises_is_accepted(client):
    for scale in _advertised(client, "/upscale", "scale"):
        _, _, _, info = client.predict(handle_file(str(TENTS)), "flashsr", scale, 256, "auto", False,
                                       api_name="/upscale")
        assert info["output_size"][0] > 0
    factors = _advertised(client, "/video", "fps_factor")
    assert "1" in factors
    video, text, details = client.predict(handle_file(str(EXAMPLES / "clip_cdfi.webm")), "1", "flashsr_x2", "auto",
                                          None, api_name="/video")
    assert details["frames_out"] > 0
    _still_serving(client)


def test_refusals_log_one_line_and_no_traceback(client, caplog, capfd):
    caplog.set_level(logging.INFO, logger="stsr.app")
    capfd.readouterr()
    for args in ((handle_file(str(TENTS)), "flashsr", 3, 256, "auto", False),
                 ({"path": "/etc/passwd"}, "flashsr", 2, 256, "auto", False),
                 (handle_file(str(TENTS)), "flashsr", 2, 64, "auto", False)):
        with pytest.raises(AppError):
            client.predict(*args, api_name="/upscale")
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and all("\n" not in r.getMessage() for r in refused)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    _still_serving(client)


def test_the_tile_slider_offers_only_accepted_sizes_and_benchmark_defaults_to_the_flagship():
    import app
    from ui import sr_tab

    config = app.demo.get_config_file()
    by_id = {c["id"]: c for c in config["components"]}
    sliders = [c for c in by_id.values() if c.get("props", {}).get("label", "").startswith("Tile size")]
    assert sliders
    props = sliders[0]["props"]
    offered = range(int(props["minimum"]), int(props["maximum"]) + 1, int(props["step"]))
    assert all(t == 0 or t >= sr_tab.MIN_TILE for t in offered)
    bench = [c for c in by_id.values() if c.get("props", {}).get("label") == "Models"
             and c.get("type") == "checkboxgroup"]
    assert bench and bench[0]["props"]["value"] == ["flashsr_x4"]


@pytest.mark.parametrize("strength, message", [(-0.1, "from 0 to 1"), (1.5, "from 0 to 1"), ("nan", "a number"),
                                               ("strong", "a number"), (None, "a number")])
def test_strength_is_validated_on_every_model(client, strength, message):
    with pytest.raises(AppError, match=f"'strength' must be.*{message}"):
        client.predict(handle_file(str(TENTS)), "flashsr", "2", 256, "auto", False, "png", 95, 0, "auto", strength,
                       api_name="/upscale")
    _still_serving(client)
