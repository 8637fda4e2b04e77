"""Stopping long jobs from the UI: a Stop button per tab that really stops the work.

Gradio's `cancels=` drops the event, but a plain function keeps running in its worker thread. So
each long handler registers a Job for its browser session, its progress callback calls
`job.check()` between tiles / frames / passes, and the Stop button marks the session's jobs
cancelled: the next check raises JobCancelled, the loop ends within one step, and outputs that are
written to a temporary name first (video) are removed, so nothing half-written is left.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional, Set

import gradio as gr

_lock = threading.Lock()
_jobs: Dict[str, Set[Job]] = {}


class JobCancelled(RuntimeError):
    """Raised inside a long loop once its Stop button was pressed."""


class Job:
    def __init__(self, session: str):
        self.session = session
        self.cancelled = threading.Event()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled("Stopped: the job was cancelled from the page; nothing was written.")

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            jobs = _jobs.get(self.session)
            if jobs is not None:
                jobs.discard(self)
                if not jobs:
                    _jobs.pop(self.session, None)


def _session(request: Optional[gr.Request]) -> str:
    return getattr(request, "session_hash", None) or "no-session"


def start_job(request: Optional[gr.Request]) -> Job:
    """A Job for this request's browser session; use it as a context manager so it is forgotten at the end."""
    job = Job(_session(request))
    if request is not None:  # direct calls (tests, scripts) cannot be stopped from a page
        with _lock:
            _jobs.setdefault(job.session, set()).add(job)
    return job


def stop_jobs(request: gr.Request) -> None:
    """The Stop button's handler: cancel every running job of the caller's session."""
    with _lock:
        jobs = list(_jobs.get(_session(request), ()))
    for job in jobs:
        job.cancelled.set()
    if jobs:
        gr.Info("Stopping…")


def stop_button(label: str = "Stop") -> gr.Button:
    return gr.Button(label, variant="stop", scale=0, min_width=80)


def cancel_on(button: gr.Button, *events) -> None:
    """`button` flags the session's running jobs (their loops stop) and cancels the queued `events`."""
    button.click(stop_jobs, None, None, cancels=list(events), queue=False, api_visibility="private")
