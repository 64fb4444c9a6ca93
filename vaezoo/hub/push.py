"""Publishing: ``push_to_hub`` builds the folder and commits it in one commit; ``vaezoo zoo push``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .download import endpoint, first_line, hf_library, hf_errors, is_network_error, quiet_retries
from .folder import build_folder
from .names import FILES, HUB_PREFIX, HubError, HubUnavailableError, INSTALL_HINT, REVISION_PATTERN, check_repo_id


def push_to_hub(source: Any, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                token: str | None = None, commit_message: str | None = None, license: str | None = None,
                folder: str | os.PathLike[str] | None = None) -> str:
    """Upload ``source`` (a model, a zoo name or entry, a model or run folder) to the Hub repository ``repo_id``.

    Builds the folder (``build_folder``; into ``folder`` when given, kept; else a temporary
    one), creates the repository if needed (``private``), creates the branch ``revision``
    if needed, and commits ``config.json``, ``model.safetensors`` and ``README.md`` in one
    commit. ``token``: default huggingface_hub's (``HF_TOKEN`` or ``hf auth login``).
    Returns the name that loads it: ``hf-hub:ORG/NAME`` (``@REVISION`` for a branch).
    """
    check_repo_id(repo_id)
    if revision is not None and not (REVISION_PATTERN.match(revision) and ".." not in revision):
        raise HubError(f"--revision {revision!r}: not a branch name; letters, digits, '.', '_', '-' and '/'")
    hf = hf_library()
    with tempfile.TemporaryDirectory(prefix="vaezoo-push-") as tmp:
        where = build_folder(source, folder if folder is not None else Path(tmp) / "repo", repo_id=repo_id,
                             license=license)
        upload_folder(hf, where, repo_id, revision=revision, private=private, token=token,
                      commit_message=commit_message)
    return f"{HUB_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")


def upload_folder(hf: Any, folder: Path, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                  token: str | None = None, commit_message: str | None = None) -> Any:
    """Commit the three files of ``folder`` to ``repo_id`` (creating the repository and branch); one-line errors."""
    errors = hf_errors(hf)
    name = f"{HUB_PREFIX}{repo_id}"
    try:
        with quiet_retries():
            api = hf.HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            operations = [hf.CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in FILES]
            return api.create_commit(repo_id, operations=operations, revision=revision,
                                     commit_message=commit_message or f"Upload vaezoo model ({', '.join(FILES)})")
    except errors["OfflineModeIsEnabled"]:
        raise HubUnavailableError(f"{name}: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it") from None
    except errors["RepositoryNotFoundError"]:
        raise HubError(f"{name}: the Hub at {endpoint(hf)} has no repository {repo_id} that you may write to; "
                       f"log in (hf auth login, or set HF_TOKEN) as its owner or a member of {repo_id.split('/')[0]}") \
            from None
    except errors["HfHubHTTPError"] as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"{name}: the Hub refused the upload (HTTP {status}); log in with hf auth login, or set "
                           f"HF_TOKEN to a token with write access to {repo_id}") from None
        if status is not None and 400 <= status < 500:
            raise HubError(f"{name}: the Hub refused the upload (HTTP {status}: {first_line(exc)})") from None
        raise HubUnavailableError(f"{name}: the Hub at {endpoint(hf)} failed during the upload "
                                  f"({first_line(exc)}); try again later") from None
    except Exception as exc:
        if not is_network_error(exc):
            raise
        raise HubUnavailableError(f"{name}: cannot reach the Hub at {endpoint(hf)} "
                                  f"({type(exc).__name__}: {first_line(exc)})") from None


# -- vaezoo zoo push -----------------------------------------------------------------------
PUSH_EPILOG = """\
examples:
  vaezoo zoo push mlp-bernoulli.digits someone/mlp-bernoulli-digits     a zoo model, its weights byte for byte
  vaezoo zoo push runs/digits-20250101-120000 someone/my-vae --private  a run: its eval.json, config.yaml, data
  vaezoo zoo push my-model someone/my-vae --revision v1                 a model folder, to the branch v1
  vaezoo zoo push mlp-bernoulli.digits someone/x --out hub-x --dry-run  write the files only, upload nothing

log in first (hf auth login, or set HF_TOKEN); load it back with vaezoo.from_pretrained("hf-hub:someone/my-vae").
"""


def add_push_parser(subparsers: Any) -> Any:
    """Add ``push`` to ``vaezoo zoo``'s subparsers (argparse only: nothing heavy is imported)."""
    import argparse

    q = subparsers.add_parser(
        "push", help="upload a model to the Hugging Face Hub, with its model card",
        description="Upload config.json (with the weights' sha256), model.safetensors and a README.md model card "
                    "to a Hugging Face Hub model repository, in one commit. Needs " + INSTALL_HINT + ".",
        epilog=PUSH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("source", metavar="NAME_OR_FOLDER", help="a zoo name, a model folder or a run folder")
    q.add_argument("repo_id", metavar="REPO_ID", help="the Hub repository, ORG/NAME (created if it does not exist)")
    q.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created from main if needed)")
    q.add_argument("--private", action="store_true", help="create the repository private")
    q.add_argument("--license", metavar="SPDX", help="the weights' license for the card (default: the zoo entry's)")
    q.add_argument("--message", metavar="TEXT", help="the commit message")
    q.add_argument("--out", metavar="DIR", help="write the three files into DIR too (new or empty), and keep them")
    q.add_argument("--dry-run", action="store_true", help="write the files (into --out) and upload nothing")
    return q


def run_push(args: Any) -> int:
    """``vaezoo zoo push``: build the folder, upload it (unless ``--dry-run``), say where it went."""
    check_repo_id(args.repo_id, what=args.repo_id)
    if args.dry_run:
        if not args.out:
            raise HubError("--dry-run: nothing would be kept; give --out DIR to write the files into")
        where = build_folder(args.source, args.out, repo_id=args.repo_id, license=args.license)
        print(f"wrote {', '.join(FILES)} to {where} (nothing uploaded)")
        return 0
    name = push_to_hub(args.source, args.repo_id, revision=args.revision, private=True if args.private else None,
                       commit_message=args.message, license=args.license, folder=args.out)
    hf = hf_library()
    print(f"pushed {args.source} to {endpoint(hf)}/{args.repo_id}" + (f" (branch {args.revision})" if args.revision
                                                                          else ""))
    print(f"load it with: vaezoo.from_pretrained({name!r})")
    return 0
