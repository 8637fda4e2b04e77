"""What Triton's Python-backend stub needs from this environment (used by `serve.triton`).

PyTriton 0.7 runs its proxy inside the stub, which is built against the numpy 1.x C ABI, so the stub
gets its own numpy 1.26 (STSR_TRITON_STUB_SITE, default ~/.cache/stsr/triton-stub) first on its path;
and the proxy's handshake between a model's instances is made robust on a busy machine (see
`_patch_proxy_files`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

STUB_NUMPY = "numpy>=1.26,<2"


def stub_site() -> Path:
    return Path(os.environ.get("STSR_TRITON_STUB_SITE", Path.home() / ".cache" / "stsr" / "triton-stub"))


def _numpy_major(dist_infos: Sequence[Path]) -> Optional[int]:
    for info in dist_infos:
        try:
            return int(info.name.split("-")[1].split(".")[0])
        except (IndexError, ValueError):
            continue
    return None


def stub_needs_numpy1() -> bool:
    return int(np.__version__.split(".")[0]) >= 2


def setup_stub(target: Optional[Path] = None) -> Path:
    """pip-install numpy<2 into the stub's private folder (not into this environment)."""
    target = Path(target or stub_site())
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target", str(target),
                    STUB_NUMPY], check=True)
    return target


def check_stub(target: Optional[Path] = None) -> Optional[Path]:
    """The folder to put first on the stub's path (None when this environment's numpy already fits)."""
    if not stub_needs_numpy1():
        return None
    target = Path(target or stub_site())
    major = _numpy_major(sorted(target.glob("numpy-*.dist-info")))
    if major is None or major >= 2:
        raise RuntimeError(f"Triton's Python-backend stub needs numpy<2 in {target} (this environment has numpy "
                           f"{np.__version__}); run once: python -m serve.triton --setup")
    return target


def prepare_environment(stub_path: Optional[Path]) -> None:
    """Make the stub load this interpreter (and its site-packages) and, if needed, the numpy-1 folder.

    The stub links libpython3.X.so from the library path; without this interpreter's LIBDIR first it
    picks a system libpython whose sys.path lacks this environment's packages."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir:
        current = os.environ.get("LD_LIBRARY_PATH", "")
        if libdir not in current.split(":"):
            os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir
    _patch_proxy_files(stub_path)


# PyTriton 0.7's proxy/communication.py, get_config_from_handshake_server: instance 0 of a model serves
# the handshake socket and every other instance connects to it. Two fixes, both text replacements that
# fail loudly if PyTriton's source changes:
HANDSHAKE_DEFAULT = b"def get_config_from_handshake_server(socket_path: pathlib.Path, timeout_s: float = 1.0)"
HANDSHAKE_TIMEOUT_S = 60
HANDSHAKE_CONNECT = (b"        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                     b"        sock.settimeout(max(0.0, should_stop_before_s - time.time()))\n"
                     b"        sock.connect(socket_path.as_posix())\n")
HANDSHAKE_CONNECT_RETRYING = b"""        while True:  # serve.triton_stub: bound but not listening yet -> retry
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(max(0.0, should_stop_before_s - time.time()))
            try:
                sock.connect(socket_path.as_posix())
                break
            except ConnectionRefusedError:
                sock.close()
                if time.time() >= should_stop_before_s:
                    raise
                time.sleep(0.01)
"""


def patch_handshake_source(source: bytes) -> bytes:
    """communication.py with a 60-s instead of 1-s handshake timeout (on a busy 2-core machine a second
    instance missed it) and a connect that retries ECONNREFUSED until then: asyncio's unix server binds
    the socket file (which the client polls for) before it listens, and a client connecting in between
    was refused and failed the model's load (CI, stop 33)."""
    if HANDSHAKE_DEFAULT not in source or HANDSHAKE_CONNECT not in source:
        raise RuntimeError("PyTriton's proxy communication.py changed; cannot patch its handshake")
    longer = HANDSHAKE_DEFAULT.replace(b"1.0)", f"{HANDSHAKE_TIMEOUT_S:.1f})".encode())
    source = source.replace(HANDSHAKE_DEFAULT, longer)
    return source.replace(HANDSHAKE_CONNECT, HANDSHAKE_CONNECT_RETRYING)


def _patch_proxy_files(stub_path: Optional[Path]) -> None:
    """Adjust the proxy files PyTriton sends into the stub: the numpy-1 folder first on sys.path, and
    the handshake made robust (`patch_handshake_source`)."""
    import pytriton.models.model as pytriton_model

    current = pytriton_model.Model.get_proxy_model_files
    original = getattr(current, "_stsr_original", current)
    prefix = f"import sys\nsys.path.insert(0, {str(stub_path)!r})\n".encode() if stub_path else b""

    def get_proxy_model_files(self):
        files = original(self)
        for key, source in files.items():
            if key.endswith("/model.py") and prefix:
                if b"from __future__" in source:
                    raise RuntimeError("PyTriton's proxy model.py changed (a __future__ import); cannot prefix it")
                files[key] = prefix + source
            elif key.endswith("/communication.py"):
                files[key] = patch_handshake_source(source)
        return files

    get_proxy_model_files._stsr_original = original
    pytriton_model.Model.get_proxy_model_files = get_proxy_model_files
