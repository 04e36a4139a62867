"""``stagerun`` commands that act on this machine's database and files directly, without the API:
API tokens (``stagerun token ...``, and the local token made on first start) and ``stagerun dataset
check``. Imported by client/cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.settings import get_settings


def ensure_local_token() -> tuple[str, bool]:
    """The local admin token of this home (created on first start), after migrating the schema."""
    from shared import migrate
    from shared.auth import ensure_local_token as ensure
    from shared.db import session_scope

    settings = get_settings()
    settings.ensure_dirs()
    migrate.upgrade()
    with session_scope() as session:
        return ensure(session, settings.token_file)


def print_local_token(token: str, created: bool) -> None:
    where = get_settings().token_file
    if created:
        print(f"created the local admin API token (stored in {where}, mode 0600; the CLI uses it):\n  {token}")
    else:
        print(f"local admin API token in {where}")


def cmd_token_create(args) -> int:
    from shared import auth
    from shared.db import session_scope

    with session_scope() as session:
        try:
            token, text = auth.create_token(session, args.name, args.owner, args.admin)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        kind = "admin token" if token.is_admin else f"token of owner {token.owner!r}"
        print(f"created {kind} {token.name!r} (id {token.id}); it is shown only this once:", file=sys.stderr)
    print(text)
    return 0


def cmd_token_list(_args) -> int:
    from shared import auth
    from shared.db import session_scope

    with session_scope() as session:
        print(f"{'id':>4}  {'name':<20} {'owner':<20} {'admin':<5} {'created':<20} {'last used':<20} revoked")
        for token in auth.list_tokens(session):
            used = f"{token.last_used_at:%Y-%m-%d %H:%M:%S}" if token.last_used_at else "-"
            revoked = f"{token.revoked_at:%Y-%m-%d %H:%M:%S}" if token.revoked_at else "-"
            print(
                f"{token.id:>4}  {token.name:<20} {token.owner:<20} {'yes' if token.is_admin else 'no':<5} "
                f"{token.created_at:%Y-%m-%d %H:%M:%S}  {used:<20} {revoked}"
            )
    return 0


def cmd_token_revoke(args) -> int:
    from shared import auth
    from shared.db import session_scope
    from shared.errors import NotFound

    with session_scope() as session:
        try:
            already = auth.token_revoked_at(session, args.token_id)
            token = auth.revoke_token(session, args.token_id)
        except NotFound as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        if already is not None:
            print(f"token {token.id} ({token.name}, owner {token.owner}) was already revoked on {already:%Y-%m-%d %H:%M:%S}")
            return 0
        print(f"revoked token {token.id} ({token.name}, owner {token.owner})")
    return 0


def cmd_token_local(_args) -> int:
    token, created = ensure_local_token()
    print(token)
    print("created" if created else "reused", file=sys.stderr)
    return 0


def cmd_dataset_check(args) -> int:
    """Validate and profile a dataset folder here, without the API (the same code the API runs)."""
    from shared.datasets.profile import build_profile, classes_at_risk
    from shared.datasets.validate import validate_dataset

    folder = Path(args.folder).resolve()
    report = validate_dataset(folder, folder)
    summary = report.to_dict()
    profile = build_profile(report.names, report.images) if report.names else None
    at_risk = classes_at_risk(profile, args.imgsz) if profile else []
    if args.json:
        print(json.dumps({"validation": summary, "profile": profile, "at_risk": at_risk}, indent=2))
        return 0 if report.valid else 1
    print(f"{folder}: {'valid' if report.valid else 'INVALID'}; images {summary['images']}, boxes {summary['labels']}")
    for issue in summary["errors"][:20] + summary["warnings"][:20]:
        where = f"{issue['file']}:{issue['line']}" if issue["line"] else (issue["file"] or "")
        print(f"  {issue['code']:<24} {where}  {issue['message']}")
    if profile:
        print(
            f"boxes under 0.005 / 0.01 of the image width: {profile['share_width_under_0.005']:.1%} / "
            f"{profile['share_width_under_0.01']:.1%}; oversized (area > 0.1): {profile['oversized_boxes']}"
        )
    sizes = sorted({640, args.imgsz})
    print("classes at risk:" if at_risk else "no class at risk")
    for entry in at_risk:
        at = ", ".join(f"{entry['median_thin_side_px_at_imgsz'][str(size)]:.2f} px @{size}" for size in sizes)
        print(f"  {entry['name']} ({entry['instances']} boxes): thin side {entry['median_thin_side_px']:.2f} px, {at}")
        for reason in entry["reasons"]:
            print(f"    - {reason}")
    if at_risk:
        print("train with `thin_assigner: {}` on the train stage; its starvation report (stagerun status) "
              "shows whether these classes get a learning signal")
    return 0 if report.valid else 1
