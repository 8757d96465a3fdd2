"""Jobs that outlive a rerun: the training job, atlas builds and speed timings, one manager per app process."""

import streamlit as st

from charmodel.training.jobs import AtlasJob, JobManager
from pages.shared.mode import run_path


@st.cache_resource
def job_manager() -> JobManager:
    """One training job manager per app process: it survives reruns, page switches and refreshes."""
    return JobManager()


def start_atlas_job(run: str, checkpoint: str) -> AtlasJob:
    return job_manager().start_atlas(run_path(run), checkpoint)


def atlas_job(run: str, checkpoint: str) -> AtlasJob | None:
    return job_manager().atlas(run_path(run), checkpoint)
