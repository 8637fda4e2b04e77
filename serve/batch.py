"""Run one per-image job over many files: mirrored output tree, skip-done, progress with ETA, failure summary.

    from serve.batch import collect_inputs, run_batch
    files, root = collect_inputs("photos/")                        # recursive, sorted
    report = run_batch(files, "out/", process, root=root, extension=".png", cancel=lambda: stop_flag)
    report.failed   # [FileResult(name='b/broken.jpg', status='failed', message='truncated JPEG: ...'), ...]

`process(source, destination) -> dict` does one file (read, run, write `destination`) and returns an
info dict. It writes to a temporary name that is renamed only on success, so an interrupted run never
leaves a half-written file that the next run would skip as done. One file failing (any Exception) is
recorded and the batch goes on; KeyboardInterrupt stops it. Messages name files relative to the input
root, never by their full path on this machine. The CLIs (serve.sr, serve.colorize, serve.uncertainty)
and the app's batch tab share this.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from common.images import IMAGE_EXTENSIONS, list_images

from .contract import error_message

PathLike = Union[str, Path]
Process = Callable[[Path, Path], Optional[Dict[str, Any]]]


@dataclass
class FileResult:
    source: Path
    output: Path
    name: str  # relative to the input root: what messages and summaries show
    status: str  # "done", "skipped" (output already there), "failed", "cancelled"
    message: str = ""
    seconds: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchReport:
    results: List[FileResult]
    seconds: float

    def by_status(self, status: str) -> List[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> List[FileResult]:
        return self.by_status("done")

    @property
    def skipped(self) -> List[FileResult]:
        return self.by_status("skipped")

    @property
    def failed(self) -> List[FileResult]:
        return self.by_status("failed")

    @property
    def cancelled(self) -> List[FileResult]:
        return self.by_status("cancelled")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def summary(self) -> str:
        """'20 files: 18 done, 0 skipped (already done), 2 failed in 3.1 s' plus one line per failure."""
        parts = [f"{len(self.done)} done", f"{len(self.skipped)} skipped (already done)", f"{len(self.failed)} failed"]
        if self.cancelled:
            parts.append(f"{len(self.cancelled)} not run (cancelled)")
        lines = [f"{len(self.results)} files: {', '.join(parts)} in {self.seconds:.1f} s"]
        lines += [f"  failed: {r.name}: {r.message}" for r in self.failed]
        return "\n".join(lines)


def collect_inputs(source: PathLike) -> Tuple[List[Path], Path]:
    """(image files, root): a folder gives its images recursively (sorted), a file gives itself."""
    path = Path(source)
    if path.is_dir():
        return list_images(path), path
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return [path], path.parent


def plan_outputs(files: Sequence[Path], root: Optional[Path], out_dir: PathLike, extension: str,
                 suffix: str = "") -> List[Tuple[Path, Path, str]]:
    """(source, output, display name) per file: the tree under `root` mirrored under `out_dir`.

    `extension` replaces the source's ('.png'); when two sources would map to one output (a.jpg and
    a.png -> a.png), the later ones keep their old extension in the name (a_png.png).
    """
    out_dir = Path(out_dir)
    planned, taken = [], set()
    for source in files:
        source = Path(source)
        try:
            relative = source.relative_to(root) if root is not None else Path(source.name)
        except ValueError:
            relative = Path(source.name)
        output = out_dir / relative.parent / f"{relative.stem}{suffix}{extension}"
        if output in taken:
            output = out_dir / relative.parent / f"{relative.stem}_{relative.suffix.lstrip('.')}{suffix}{extension}"
        taken.add(output)
        planned.append((source, output, relative.as_posix()))
    return planned


def _partial(output: Path, directories: bool) -> Path:
    return output.with_name(f"{output.name}.partial" if directories else f"{output.stem}.partial{output.suffix}")


def _discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True)


def run_batch(files: Iterable[PathLike], out_dir: PathLike, process: Process, *, root: Optional[PathLike] = None,
              extension: str = ".png", suffix: str = "", overwrite: bool = False,
              cancel: Optional[Callable[[], bool]] = None,
              progress: Union[bool, Callable[[int, int, str], None]] = True,
              desc: str = "images", directories: bool = False) -> BatchReport:
    """Run `process(source, output)` for each file; returns a BatchReport (per-file results, in order).

    overwrite=False skips files whose output already exists. `cancel()` is checked before each file;
    once it returns True the rest are marked "cancelled". progress=True shows a tqdm bar with ETA on
    stderr; a callable gets (done, total, name) instead (e.g. a gr.Progress adapter). directories=True:
    each output is a folder (serve.uncertainty) that `process` fills; done when it exists and is not empty.
    """
    started = time.perf_counter()
    planned = plan_outputs([Path(f) for f in files], Path(root) if root is not None else None, out_dir,
                           "" if directories else extension, suffix)
    bar = _progress_bar(len(planned), desc) if progress is True else None
    results: List[FileResult] = []
    cancelled = False
    try:
        for index, (source, output, name) in enumerate(planned):
            if not cancelled and cancel is not None and cancel():
                cancelled = True
            if cancelled:
                results.append(FileResult(source, output, name, "cancelled"))
                continue
            exists = output.is_dir() and any(output.iterdir()) if directories else output.exists()
            if exists and not overwrite:
                results.append(FileResult(source, output, name, "skipped", "output already exists"))
            else:
                results.append(_run_one(process, source, output, name, directories))
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(name[-40:], refresh=False)
            elif callable(progress):
                progress(index + 1, len(planned), name)
    finally:
        if bar is not None:
            bar.close()
    return BatchReport(results, time.perf_counter() - started)


def _run_one(process: Process, source: Path, output: Path, name: str, directories: bool) -> FileResult:
    started = time.perf_counter()
    target = _partial(output, directories)
    _discard(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = process(source, target) or {}
        if directories and output.exists():
            _discard(output)  # --overwrite of a finished folder
        target.replace(output)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch; its message is kept
        _discard(target)
        message = error_message(exc).replace(str(source), name).replace(str(target), output.name).strip()
        message = message[len(name) + 2:] if message.startswith(f"{name}: ") else message  # the summary names it
        if not isinstance(exc, (ValueError, OSError, KeyError, RuntimeError)) or not message:
            message = f"{type(exc).__name__}: {message}".rstrip(": ")  # an unexpected kind: name it
        return FileResult(source, output, name, "failed", message, time.perf_counter() - started)
    return FileResult(source, output, name, "done", "", time.perf_counter() - started, info)


def is_image_path(path: PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# ------------------------------------------------------------------------------------------- CLI glue
def add_output_arguments(parser, *, formats: bool = True, sizes: bool = False) -> None:
    """The flags every serve CLI shares: --format/--quality (image outputs), sizes (SR), --overwrite."""
    from common.image_write import FORMATS

    if formats:
        parser.add_argument("--format", default=None, choices=FORMATS,
                            help="output format (default: from --out's name; png for folders)")
        parser.add_argument("--quality", type=int, default=None,
                            help="1-100: JPEG/WebP quality, lossless-WebP effort (default 95 JPEG, 90 WebP)")
    if sizes:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--outscale", type=float, default=None,
                           help="any output scale up to 16 (e.g. 1.5, 3, 6, 8): models chained, then resized")
        group.add_argument("--width", type=int, default=None, help="output width in pixels (height follows)")
        group.add_argument("--height", type=int, default=None, help="output height in pixels (width follows)")
        group.add_argument("--long-side", type=int, default=None, help="output long side in pixels")
    parser.add_argument("--overwrite", action="store_true",
                        help="folder input: redo files whose output already exists (default: skip them)")


def output_format(args, out: Path, folder: bool) -> Optional[str]:
    """The --format to use, checked against --out's name for a single file; validates --quality."""
    from common.image_write import check_quality, format_for_path, normalize_format

    check_quality(getattr(args, "quality", None))
    fmt = getattr(args, "format", None)
    if folder:
        return fmt or "png"
    named = format_for_path(out)
    if fmt and named and named != normalize_format(fmt) and not (fmt == "webp-lossless" and named == "webp"):
        raise ValueError(f"--format {fmt} does not match the output name {out.name}")
    return fmt


def run_cli(input_path: PathLike, out: PathLike, job: Process, describe: Callable[[Path, Dict[str, Any]], str], *,
            extension: str = ".png", overwrite: bool = False, desc: str = "images",
            directories: bool = False) -> int:
    """One file: run `job(input, out)` and print `describe(out, info)` (errors reach cli_main: exit 2).
    A folder: run_batch over its images into the folder `out`, print the summary; exit 1 if any failed. `out`
    may not be the input folder; when it lies inside it, the files already under `out` are not inputs."""
    source = Path(input_path)
    if not source.is_dir():
        if Path(out).is_dir() and not directories:
            raise ValueError(f"--out {out} is a folder; give the output file's name (a folder --out is for a folder "
                             "input)")
        info = job(source, Path(out)) or {}
        print(describe(Path(out), info))
        return 0
    out_dir = Path(out).resolve()
    if out_dir == source.resolve():
        raise ValueError(f"--out {out} is the input folder itself: the results would replace or be mistaken for the "
                         "inputs; choose another folder")
    files, root = collect_inputs(source)
    # an output folder inside the input folder: its files are earlier results, not inputs
    files = [f for f in files if out_dir not in f.resolve().parents]
    if not files:
        raise ValueError(f"{input_path}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    report = run_batch(files, out, job, root=root, extension=extension, overwrite=overwrite, desc=desc,
                       directories=directories)
    print(report.summary())
    return 0 if report.ok else 1
