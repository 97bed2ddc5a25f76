"""The `medrecord` command line: a thin shell over the SDK.

Every SDK flow is a command::

    medrecord demo                                   the whole story on an in-process chain
    medrecord deploy                                 contracts to --rpc, manifest written
    medrecord keys new | show | register             account + X25519 key, publish the key
    medrecord record add | list | show | read | share | version | erase | retract | shared
    medrecord consent grant | revoke | sign-grant | sign-revoke | relay | show | check
    medrecord guardian appoint | remove
    medrecord study create | fund | enroll | pay | reject | claim | reclaim | show
    medrecord token balance | mint | transfer
    medrecord claim submit | adjudicate | appeal | escalate | pay-share | release | list | show
    medrecord audit                                  the typed audit trail
    medrecord fhir validate | classify | consent-export | consent-import
    medrecord dev fund                               ETH for an address, on a local devnet

Global options say where the
chain, the contracts, the store and the keys are; each also reads a ``MEDRECORD_*`` variable
(through :class:`~medrecord_sdk.config.Settings`), and an option beats its variable.

Errors the SDK expects (no consent, wrong passphrase, node down...) are printed as one red
line on stderr that says what to do, with exit status 1; usage errors exit with 2. A traceback
means a bug.

Why the commands are loaded lazily (:class:`_LazyGroup`): each command module pulls in web3,
eth-account, cryptography or fhir.resources, about a second together; ``medrecord --help`` and a
mistyped command should answer at once, so a command's module is imported only when that
command runs (or its own ``--help`` is asked for). The group's help lists the short help
registered with each command.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import IO, Any

import click

from . import __version__
from .errors import ContractRevert, MedRecordError

__all__ = ["main"]


class ReportedError(click.ClickException):
    """An expected failure, shown as ``Error: ...`` in red on stderr (exit status 1)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.secho(f"Error: {self.format_message()}", err=True, fg="red")


# What to do about the reverts a CLI user meets most; the decoded error is always shown too.
_REVERT_HINTS = {
    "ConsentRegistryUnauthorized": (
        "you are neither the patient nor one of their guardians (`medrecord guardian appoint`)"
    ),
    "ConsentRegistryInvalidSignature": (
        "the signature is not the patient's for the pair's current nonce (a later grant or "
        "revoke voids it); ask the patient to sign again"
    ),
    "ConsentRegistryExpiredSignature": "the signature expired; ask the patient to sign again",
    "ConsentRegistryGuardianExists": "that account is already a guardian",
    "ConsentRegistryGuardianNotFound": "that account is not a guardian",
    "RecordRegistryUnauthorizedAuthor": (
        "writing for a patient needs their WRITE consent for the category "
        "(`medrecord consent grant YOU --actions write ...`, by the patient)"
    ),
    "RecordRegistryUnauthorized": "only the patient or a guardian may do this",
    "RecordRegistryNonexistentRecord": "no record has that id (`medrecord record list`)",
    "StudyEscrowUnknownStudy": "no study has that id",
    "StudyEscrowNotResearcher": "only the study's researcher may do this",
    "StudyEscrowConsentMissing": (
        "the patient must first grant the researcher the study's categories for its purpose "
        "(`medrecord consent grant RESEARCHER --categories ... --purposes HRESCH ...`)"
    ),
    "StudyEscrowInsufficientFunding": "fund the study first (`medrecord study fund`)",
    "StudyEscrowEnrollmentClosed": "enrollment in this study has closed",
    "StudyEscrowReviewNotOver": "wait until the review period ends (`medrecord study show`)",
    "StudyEscrowReviewOver": "the review period is over",
    "StudyEscrowNothingToReclaim": "nothing is left to reclaim",
    "AccessControlUnauthorizedAccount": (
        "your account lacks the role this needs (minting needs MINTER_ROLE: ask the deployer)"
    ),
    "ERC20InsufficientBalance": "not enough tokens (`medrecord token balance`)",
}


def _message(exc: MedRecordError) -> str:
    if isinstance(exc, ContractRevert):
        from ._cli._output import jsonable

        rendered = ", ".join(f"{k}={jsonable(v)}" for k, v in exc.args_by_name.items())
        hint = _REVERT_HINTS.get(exc.error_name)
        where = f" in transaction {exc.transaction_hash}" if exc.transaction_hash else ""
        return f"the contract refused{where}: {exc.error_name}({rendered})" + (
            f"; {hint}" if hint else ""
        )
    return str(exc)


def _rpc_message(exc: Any) -> str:
    """The node's own words for a refused request (the SDK lets these through on sending)."""
    error = (exc.rpc_response or {}).get("error")
    text = str(error.get("message")) if isinstance(error, dict) else str(exc)
    hint = ""
    if "insufficient funds" in text.lower():
        hint = "; the account has too little ETH for gas: fund it, then run the command again"
    elif "nonce" in text.lower():
        hint = "; another transaction from this account is pending or was replaced: retry"
    return f"the node refused the request: {text}{hint}"


def _json_error(kind: str, message: str, exit_code: int) -> None:
    error = {"kind": kind, "message": message, "exit_code": exit_code}
    click.echo(json.dumps({"error": error}), err=True)
    sys.exit(exit_code)


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy: dict[str, tuple[str, str]] = {}

    def add_lazy(self, name: str, target: str, short_help: str) -> None:
        """Registers command ``name`` as ``module:attribute``, loaded when first used."""
        self._lazy[name] = (target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self._lazy:
            module, _, attribute = self._lazy[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit=70)))
            else:
                rows.append((name, self._lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _MedRecordGroup(_LazyGroup):
    """Turns the SDK's expected errors into one clear line instead of a traceback."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        """With ``--json``, errors are JSON too: ``{"error": {"kind", "message", "exit_code"}}``
        on stderr (usage errors exit 2, refusals 1), so a script never parses prose."""
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or kwargs.get("standalone_mode", True) is False:
            return super().main(args, *rest, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            return super().main(argv, *rest, **kwargs)
        except click.ClickException as exc:
            kind = "usage" if isinstance(exc, click.UsageError) else "refused"
            _json_error(kind, exc.format_message(), exc.exit_code)
        except click.Abort:
            _json_error("aborted", "aborted (no input, or Ctrl-C)", 1)

    def invoke(self, ctx: click.Context) -> Any:
        # Imported here, not at the top: `medrecord --help` never gets this far.
        import requests
        from web3.exceptions import TimeExhausted, Web3RPCError

        try:
            return super().invoke(ctx)
        except MedRecordError as exc:
            raise ReportedError(_message(exc)) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ReportedError(
                f"lost the connection to the node ({type(exc).__name__}); check that it is "
                "running and that --rpc is right, then run the command again"
            ) from exc
        except Web3RPCError as exc:
            raise ReportedError(_rpc_message(exc)) from exc
        except TimeExhausted as exc:
            raise ReportedError(
                f"{exc}; the transaction may still be mined: check before sending it again"
            ) from exc
        except ValueError as exc:
            # The OS refuses a path with a NUL byte before any command code sees it (click
            # opens File parameters itself); that is bad input, not a bug.
            if "null byte" not in str(exc):
                raise
            raise click.UsageError("a path or value contains a NUL byte (\\x00)") from exc


_ENV_HELP = """\b
Every option also reads MEDRECORD_<NAME> (MEDRECORD_RPC_URL, MEDRECORD_STORE,
MEDRECORD_ACCOUNT_KEYSTORE, MEDRECORD_KEYSTORE, MEDRECORD_PASSWORD, ...).
"""


@click.group(cls=_MedRecordGroup, epilog=_ENV_HELP)  # type: ignore[arg-type, unused-ignore]
@click.version_option(__version__, prog_name="medrecord")
@click.option("--rpc", "rpc_url", metavar="URL", help="JSON-RPC endpoint of the chain.")
@click.option(
    "--network",
    metavar="CHOICE",
    help="An ape network choice (ethereum:local:foundry) instead of --rpc; needs eth-ape.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deployment manifest file (default: <deployments-dir>/<chain id>.json).",
)
@click.option(
    "--deployments-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of deployment manifests, one per chain id [default: deployments].",
)
@click.option(
    "--store",
    type=click.Choice(["local", "kubo", "pinning"]),
    help="Where encrypted records go [default: local].",
)
@click.option(
    "--store-path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the local store [default: store/ in the data directory].",
)
@click.option(
    "--ipfs-api",
    metavar="ADDRESS",
    help="Kubo RPC API: a URL or a multiaddr (/ip4/127.0.0.1/tcp/5001) "
    "[default: http://127.0.0.1:5001].",
)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of your record keys, wrapped to your X25519 key [default: keys/ in the data "
    "directory].",
)
@click.option(
    "--account-keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    help="eth-account JSON keystore (v3) of your account [default: the profile's].",
)
@click.option(
    "--key-keystore",
    "keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keystore of your X25519 encryption key [default: the profile's].",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the keystores' passphrase (else MEDRECORD_PASSWORD, else a prompt).",
)
@click.option(
    "--dev-account",
    type=click.IntRange(0, 999),
    metavar="N",
    help="Use account N of the PUBLIC devnet mnemonic (Anvil/Hardhat/local testing ONLY: "
    "anyone can take what it holds), with an X25519 key derived from it.",
)
@click.option(
    "--as",
    "profile",
    metavar="NAME",
    help="Act as profile NAME (its keystores and network; `medrecord --as NAME keys new` "
    "creates one) [env: MEDRECORD_PROFILE].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keys, store, profiles and journal [default: .medrecord/ if present, else the user's "
    "data directory].",
)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON on stdout.")
@click.pass_context
def main(ctx: click.Context, /, json_output: bool, **options: Any) -> None:
    """MedRecord: patient-controlled medical records on Ethereum."""
    from ._cli._context import CliState

    state = CliState({k: v for k, v in options.items() if v is not None}, json_output)
    ctx.obj = state
    ctx.call_on_close(state.close)


@main.command()
def demo() -> None:
    """Run the whole MedRecord story on the embedded chain and local store."""
    from rich.console import Console

    from ._demo import run_demo

    run_demo(Console())


# One line per command: name, where it lives, its short help (shown by `medrecord --help`
# without importing it). Other command modules add their own line here.
main.add_lazy("audit", "medrecord_sdk._cli._audit:audit", "Who did what: the on-chain audit trail.")
main.add_lazy(
    "consent", "medrecord_sdk._cli._consent:consent", "Grant, revoke, sign and check consents."
)
main.add_lazy(
    "deploy", "medrecord_sdk._cli._keys:deploy", "Deploy the contracts, write the manifest."
)
main.add_lazy(
    "fhir",
    "medrecord_sdk._cli._fhir:fhir",
    "FHIR resources in, categories, and Consent export/import.",
)
main.add_lazy(
    "guardian", "medrecord_sdk._cli._consent:guardian", "Appoint or remove your guardians."
)
main.add_lazy("keys", "medrecord_sdk._cli._keys:keys", "Create, show and publish your keys.")
main.add_lazy(
    "record", "medrecord_sdk._cli._records:record", "Add, list, read, share and erase records."
)
main.add_lazy(
    "study", "medrecord_sdk._cli._studies:study", "Create, fund and pay research studies."
)
main.add_lazy(
    "token", "medrecord_sdk._cli._studies:token", "Balances and minting of the reward token."
)
main.add_lazy("dev", "medrecord_sdk._cli._dev:dev", "Local devnet helpers: fund an address.")
main.add_lazy(
    "ops", "medrecord_sdk._cli._ops:ops", "Journalled operations: list, show, resume, abandon."
)
main.add_lazy("index", "medrecord_sdk._cli._index:index", "The event index: sync, status, rebuild.")
main.add_lazy(
    "claim",
    "medrecord_sdk._cli._claims:claim",
    "Insurance plans and claims: submit, adjudicate, pay the share.",
)
main.add_lazy(
    "recovery",
    "medrecord_sdk._cli._recovery:recovery",
    "Key recovery through trustees; break-glass emergency access.",
)
main.add_lazy(
    "alerts", "medrecord_sdk._cli._recovery:alerts", "Recovery and break-glass steps about you."
)
