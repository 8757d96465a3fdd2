"""Jobs that outlive a rerun: the training job and atlas builds, one registry per app process."""

import streamlit as st

from charmodel.jobs import AtlasJob, JobManager
from pages.shared.mode import run_path


@st.cache_resource
def job_manager() -> JobManager:
    """One training job manager per app process: it survives reruns, page switches and refreshes."""
    return JobManager()


@st.cache_resource
def atlas_jobs() -> dict:
    """Atlas builds running or finished in this app process, by (run folder, checkpoint)."""
    return {}


def start_atlas_job(run: str, checkpoint: str) -> AtlasJob:
    jobs = atlas_jobs()
    key = (str(run_path(run)), checkpoint)
    if key not in jobs or not jobs[key].alive:
        jobs[key] = AtlasJob(run_path(run), checkpoint)
    return jobs[key]


def atlas_job(run: str, checkpoint: str) -> AtlasJob | None:
    return atlas_jobs().get((str(run_path(run)), checkpoint))
