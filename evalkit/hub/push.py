"""`evalkit push`: a finished run folder published as a Hugging Face dataset repository through
`huggingface_hub.HfApi` (its files: `evalkit.hub.dataset`), replacing what an earlier push left there."""

from __future__ import annotations

import tempfile
from pathlib import Path

from evalkit.hub.dataset import build_dataset_folder
from evalkit.hub.resolve import _REPO
from evalkit.types import UserError


def push_run(
    run_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload the run in `run_dir` to the dataset repository `repo_id` (created when missing; `revision`:
    a branch, created from main when missing); returns the commit's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    repo_id = repo_id.removeprefix("hf://")
    if not _REPO.match(repo_id):
        raise UserError(f"--repo {repo_id!r}: expected USER/NAME (or ORG/NAME)")
    if not Path(run_dir, "run.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no run.json)")
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="evalkit-push-") as tmp:
        folder = build_dataset_folder(run_dir, tmp, repo_id)
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=folder,
                revision=revision,
                commit_message=f"evalkit push of run {Path(run_dir).resolve().name}",
                delete_patterns=["*.json", "*.md", "samples/**", "data/**"],  # an earlier push's files
            )
        except OfflineModeIsEnabled:
            raise UserError("cannot push with HF_HUB_OFFLINE=1: unset it (pushing needs a network)") from None
        except HfHubHTTPError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise UserError(
                f"the hub refused the push to {repo_id} ({detail}); check `hf auth login` or HF_TOKEN "
                "and your write access to the repository"
            ) from None
    return str(getattr(info, "commit_url", info))
