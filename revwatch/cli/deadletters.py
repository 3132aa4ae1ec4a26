"""`revwatch deadletters list|show|replay` and `revwatch sources token` (docs/sources.md)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, Optional

import typer

from revwatch.cli.app import ConfigOpt, JsonOpt, app, at_param, fail, load_cli_config, out
from revwatch.cli.target import open_target

dl_app = typer.Typer(help="Rejected items kept as dead letters: list, inspect, replay.", no_args_is_help=True)
app.add_typer(dl_app, name="deadletters")
sources_app = typer.Typer(help="Named webhook sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

SourceOpt = typer.Option(None, "--source", help="only this source (a named source, or events|cloudevents|otlp_logs)")
ReasonOpt = typer.Option(None, "--reason", help="only this reason, e.g. mapping, invalid_event, signature_invalid")
SinceOpt = typer.Option(None, "--since", help="last seen at or after this RFC 3339 instant")


def _filters(source: str | None, reason: str | None, since: str | None) -> dict[str, Any]:
    at_param(since, "--since")                  # exit 2 with one line for a bad instant
    return {k: v for k, v in {"source": source, "reason": reason, "since": since}.items() if v is not None}


@dl_app.command("list")
def deadletters_list(source: Optional[str] = SourceOpt, reason: Optional[str] = ReasonOpt,
                     since: Optional[str] = SinceOpt,
                     status: Optional[str] = typer.Option(None, "--status", help="open | replayed"),
                     limit: int = typer.Option(50, "--limit", min=1, max=1000),
                     cursor: Optional[str] = typer.Option(None, "--cursor", help="next_cursor of a previous page"),
                     config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """Dead letters, newest first."""
    if status not in (None, "open", "replayed"):
        fail("--status must be open or replayed")
    params = {**_filters(source, reason, since), "limit": limit}
    if status:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    items, nxt = open_target(load_cli_config(config)).deadletters_list(params)
    if as_json:
        print(json.dumps({"items": items, "next_cursor": nxt}, default=str))
        return
    if not items:
        out.print("no dead letters", markup=False)
        return
    out.print(f"{'ID':24}  {'SOURCE':16}  {'REASON':18}  {'COUNT':>5}  {'LAST SEEN (UTC)':19}  STATUS  DETAIL",
              markup=False, highlight=False)
    for x in items:
        out.print(f"{x['id']:24}  {x['source'][:16]:16}  {x['reason'][:18]:18}  {x['count']:>5}  "
                  f"{str(x['last_seen'])[:19].replace('T', ' '):19}  {x['status']:6}  {x['detail'][:60]}",
                  markup=False, highlight=False)
    if nxt:
        out.print(f"more: --cursor {nxt}", markup=False, highlight=False)


@dl_app.command("show")
def deadletters_show(letter_id: str, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """One dead letter with its kept body and last replay."""
    letter = open_target(load_cli_config(config)).deadletter(letter_id)
    if letter is None:
        fail(f"no dead letter {letter_id!r}")
    if as_json:
        print(json.dumps(letter, default=str))
        return
    for k in ("id", "door", "source", "reason", "detail", "count", "first_seen", "last_seen", "status", "replays",
              "last_replay", "body_bytes"):
        out.print(f"{k:12} {letter.get(k)}", markup=False, highlight=False)
    out.print("body:", markup=False)
    print(letter["body"])


@dl_app.command("replay")
def deadletters_replay(source: Optional[str] = SourceOpt, reason: Optional[str] = ReasonOpt,
                       since: Optional[str] = SinceOpt,
                       letter_id: Optional[str] = typer.Option(None, "--id", help="only this letter"),
                       config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """Re-run open letters through today's mapping and validation; replayed items are deduplicated."""
    params = _filters(source, reason, since)
    if letter_id:
        params["letter_id"] = letter_id
    summary = open_target(load_cli_config(config)).deadletters_replay(params)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    out.print(f"replayed {summary['replayed']}, rejected again {summary['rejected_again']}, skipped (signature, "
              f"token, size or unknown source: never replayed) {summary['skipped']}", markup=False)
    for x in summary["letters"]:
        out.print(f"  {x['id']}  {x['source']}  {x['outcome']}: {x['detail']}", markup=False, highlight=False)


@sources_app.command("token")
def sources_token():
    """A new URL token for an odoo source: put the hash line in its `secrets`, the token in Odoo's webhook URL."""
    from collector.sources import token_hash
    token = secrets.token_urlsafe(32)
    out.print("token (goes in the URL ?token=…; shown only now):", markup=False)
    print(token)
    out.print("hash (goes in sources.<name>.secrets):", markup=False)
    print(token_hash(token))
