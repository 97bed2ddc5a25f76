"""Flows x faults: every flow under every fault, resumed, ends where the fault-free run ends.

One Anvil and one js-ipfs node for the module, one deployment; the chain goes back to the
deployment's snapshot before every case (``evm_snapshot`` / ``evm_revert``), and every case has
its own journal and keyring under ``tmp_path``. The client talks to Anvil through
:class:`RpcFaultProxy` and to IPFS through :class:`HttpCutProxy`.

Per case: prepare what the flow needs (fault-free), arm the fault, run the flow (it succeeds,
or raises a MedRecordError, which after a broadcast must name the transaction hash), disarm,
then recover as a user would: ``mr.resume(*actors)`` until nothing is pending; if the flow's
own operation then ended failed (e.g. "nothing was anchored ... add the record again"), run the
flow once more, as its error message says, and resume. The observed state must equal the
fault-free run's: records and statuses, what each record decrypts to, key releases on chain,
consents, token balances and enrollments (nothing paid twice), keys in the keyring, pins added
and removed in the store, no orphan pin, and no operation left pending.

SIGKILL column: the flow runs in a child (``sigkill_child.py``) that SIGKILLs itself at a named
checkpoint of the lifecycle; this process then resumes from the same journal and data dirs.

``make test`` runs every flow under every fault, and a covering part of the SIGKILL column (each
flow killed at least once, each kind of kill point at least once: :data:`SHORT_KILLS`); the other
kill points carry the ``full_matrix`` mark, which ``make test`` deselects and ``make test-faults``
runs with the rest. The flow x fault pairs beyond :data:`SHORT_FAULTS` carry ``fault_pairs``,
which only ``make test-newest`` deselects (it checks dependency versions, not the matrix).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medrecord_sdk.chain import (
    DeploymentManifest,
    RecordStatus,
    Signer,
    deploy_contracts,
    devnet_accounts,
)
from medrecord_sdk.client import MedRecord
from medrecord_sdk.config import Settings
from medrecord_sdk.errors import MedRecordError, TransactionPending
from medrecord_sdk.storage import CID, KuboStore
from medrecord_sdk.testing import AnvilNode
from medrecord_sdk.testing.faults import (
    HttpCutProxy,
    RpcFaultProxy,
    mine,
    reorg,
    revert,
    set_automine,
    snapshot,
)
from medrecord_sdk.testing.ipfs import IpfsNode

sys.path.insert(0, str(Path(__file__).parent))
from flows import FLOWS, Flow, cast

pytestmark = pytest.mark.anvil

HERE = Path(__file__).parent
RESULTS: dict[tuple[str, str, str], str] = {}
"""test id -> outcome, written to docs/operations-faults.md by ``make faults-table``."""

FAULTS = (
    "none",
    "drop-after-send",
    "drop-before-send",
    "receipts-hidden",
    "rate-32005",
    "rate-429",
    "reorg",
    "ipfs",
)


# A covering part of the pairs (each flow under one or two faults, each fault on at least one
# flow; the transfer and the erase under drop-after-send are the failures users hit): all that
# `make test-newest` runs of them.
SHORT_FAULTS = {
    "add": ("drop-after-send", "ipfs"),
    "provider-add": ("receipts-hidden",),
    "new-version": ("reorg",),
    "share": ("drop-before-send",),
    "erase": ("drop-after-send", "ipfs"),
    "pay": ("rate-32005",),
    "fund": ("rate-429",),
    "transfer": ("drop-after-send",),
    "grant": ("reorg",),
}
# Each flow killed once, each kind of checkpoint at least once.
SHORT_KILLS = {
    "add": ("before-step:anchor", "after-step:keyring"),
    "provider-add": ("after-step:anchor",),
    "new-version": ("after-broadcast",),
    "share": ("before-broadcast",),
    "erase": ("after-step:destroy-key",),
    "pay": ("after-broadcast",),
    "fund": ("before-broadcast",),
    "transfer": ("after-broadcast",),
    "grant": ("before-broadcast",),
}


def _kill_points(flow: Flow) -> list[str]:
    points = ["before-broadcast", "after-broadcast"]
    if flow.uploads:
        points.append("before-step:anchor")
    points += [f"after-step:{s}" for s in flow.steps if s != "upload"]
    return points


@dataclass
class Env:
    url: str
    manifest: DeploymentManifest
    manifest_path: Path
    rpc: RpcFaultProxy
    ipfs: IpfsNode
    cut: HttpCutProxy
    snap: str
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if os.environ.get("MEDRECORD_SKIP_IPFS") == "1":
        pytest.skip("MEDRECORD_SKIP_IPFS=1: the matrix needs the js-ipfs node")
    with AnvilNode() as node, IpfsNode() as ipfs:
        assert node.rpc_url is not None
        manifest = deploy_contracts(Signer(node.web3(), devnet_accounts()[0]), network="anvil")
        path = tmp_path_factory.mktemp("manifest") / "manifest.json"
        manifest.save(path)
        with RpcFaultProxy(node.rpc_url) as rpc, HttpCutProxy(ipfs.api_url) as cut:
            yield Env(node.rpc_url, manifest, path, rpc, ipfs, cut, snapshot(node.rpc_url))
    _write_table()


@pytest.fixture
def case(env: Env) -> Iterator[Env]:
    revert(env.url, env.snap)
    env.snap = snapshot(env.url)
    env.rpc.clear()
    env.cut.fired.clear()
    env.cut.down(False)
    env.cut.cut_after(0, times=0)
    yield env
    env.rpc.clear()
    set_automine(env.url, True)


def _connect(env: Env, tmp: Path, **settings: Any) -> MedRecord:
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "keys_dir": tmp / "keys",
        "confirmations": 0,
        "tx_timeout": 5.0,
    }
    mr = MedRecord.connect(
        env.rpc.url,
        manifest=env.manifest,
        store=KuboStore(env.cut.url),
        settings=Settings(**(values | settings)),
    )
    mr.accounts = devnet_accounts()  # type: ignore[attr-defined]
    return mr


def _pins(env: Env) -> set[CID]:
    return set(KuboStore(env.ipfs.api_url).pins())


def _observe(mr: MedRecord, c: dict[str, Any], args: dict[str, Any], tmp: Path,
             pins_before: set[CID], env: Env) -> dict[str, Any]:  # fmt: skip
    people = {name: actor.address for name, actor in c.items()}
    records = []
    live_cids: set[CID] = set()
    for who in ("patient", "other"):
        for r in mr.records.records_of(people[who], 0, 100):
            content = None
            if r.status in (RecordStatus.ACTIVE, RecordStatus.AMENDED):
                live_cids.add(CID.from_onchain(r.cid_digest, r.cid_codec))
                content = c[who].read(r.id)
            shares = {g: len(mr.key_shares(r.id, people[g])) for g in people}
            records.append((r.id, r.author, r.status.name, r.supersedes, content, shares))
    consents = {
        f"{p}->{g}": mr.consent.consent_of(people[p], people[g])
        for p in ("patient", "other")
        for g in ("provider", "researcher", "other")
        if p != g
    }
    balances = {n: mr.token.balance_of(a) for n, a in people.items()}
    balances["escrow"] = mr.token.balance_of(mr.escrow.address)
    study = None
    if "study_id" in args:
        s = args["study_id"]
        # The deadline is "now + a period" at creation, so it moves with the wall clock of the
        # preparation (a Retry-After wait shifts it by a second): compare what the flow changes.
        details = dataclasses.asdict(mr.escrow.get_study(s))
        details.pop("enrollment_deadline", None)
        study = (
            repr(sorted(details.items())),
            {w: mr.escrow.enrollment_of(s, people[w]).name for w in ("patient", "other")},
        )
    pins_now = _pins(env)
    added, removed = pins_now - pins_before, pins_before - pins_now
    orphans = sorted(str(p) for p in added - live_cids)
    keyring = sorted(p.name for p in (tmp / "keys").rglob("*.key"))
    pending = [f"{op.kind}:{op.step}" for op in mr.operations("pending")]
    return {
        "records": records,
        "consents": consents,
        "balances": balances,
        "study": study,
        "pins_added": len(added),
        "pins_removed": len(removed),
        "orphan_pins": orphans,
        "keyring": keyring,
        "pending_operations": pending,
    }


def _resume_until_settled(env: Env, mr: MedRecord, c: dict[str, Any]) -> None:
    for _ in range(6):
        if not mr.operations("pending"):
            return
        mr.resume(*c.values())
    # Left pending: the observation shows it and the comparison fails.


def _recover(env: Env, mr: MedRecord, c: dict[str, Any], flow: Flow, args: dict[str, Any],
             before_ops: set[str]) -> None:  # fmt: skip
    _resume_until_settled(env, mr, c)
    mine_ops = [op for op in mr.operations() if op.id not in before_ops]
    if not any(op.status == "done" for op in mine_ops):
        # The flow's own operation failed for good (e.g. nothing was anchored): do what its
        # error says, run it again.
        flow.run(mr, c, args)
        _resume_until_settled(env, mr, c)


def _run_flow(env: Env, flow: Flow, fault: str, tmp: Path) -> tuple[dict[str, Any], str]:
    conf = 1 if fault == "reorg" else 0
    timeout = 0.5 if fault in ("receipts-hidden", "reorg") else 5.0
    prep = _connect(env, tmp)
    args = flow.prepare(prep, cast(prep))
    prep.close()
    mr = _connect(env, tmp, confirmations=conf, tx_timeout=timeout)
    c = cast(mr)
    before_ops = {op.id for op in mr.operations()}
    pins_before = _pins(env)
    outcome = "ok"
    if fault == "drop-after-send":
        env.rpc.drop_after_send()
    elif fault == "drop-before-send":
        env.rpc.drop_before_send()
    elif fault == "receipts-hidden":
        set_automine(env.url, False)
        env.rpc.hide_receipts(True)
    elif fault == "rate-32005":
        env.rpc.rate_limit(3, style="-32005", retry_after=0.2)
    elif fault == "rate-429":
        env.rpc.rate_limit(3, style="429", retry_after=0.2)
    elif fault == "ipfs":
        if flow.uploads:
            env.cut.cut_after(100)
        else:
            env.cut.down(True)
    raised: MedRecordError | None = None
    try:
        flow.run(mr, c, args)
    except MedRecordError as exc:
        raised = exc
    if raised is not None:
        outcome = "pending" if isinstance(raised, TransactionPending) else type(raised).__name__
        tx_hash = getattr(raised, "transaction_hash", None)
        if tx_hash:
            assert tx_hash in str(raised), (
                f"an error after a broadcast must name its hash: {raised}"
            )
    if fault == "receipts-hidden":
        env.rpc.hide_receipts(False)
        mine(env.url)  # mined later, while automine is still off
        set_automine(env.url, True)
    elif fault == "reorg":
        reorg(env.url, 1)  # the block holding the flow's transaction is replaced
        mr.resume(*c.values())  # sees the receipt gone: the same bytes again
        mine(env.url)
    elif fault == "ipfs":
        env.cut.down(False)
        env.ipfs.restart()  # the node behind the proxy restarts, same port and repo
    fired = dict(env.rpc.fired) | {f"ipfs-{k}": v for k, v in env.cut.fired.items()}
    _recover(env, mr, c, flow, args, before_ops)
    state = _observe(mr, c, args, tmp, pins_before, env)
    mr.close()
    return state, f"{outcome}; fired {fired}" if fired else outcome


def _baseline(env: Env, flow: Flow, tmp: Path) -> dict[str, Any]:
    if flow.name not in env.baselines:
        revert(env.url, env.snap)
        env.snap = snapshot(env.url)
        env.baselines[flow.name], _ = _run_flow(env, flow, "none", tmp / "baseline")
        revert(env.url, env.snap)
        env.snap = snapshot(env.url)
    return env.baselines[flow.name]


def _check(key: tuple[str, str, str], state: dict[str, Any], base: dict[str, Any],
           outcome: str) -> None:  # fmt: skip
    RESULTS[key] = f"fail ({outcome})"
    assert state["pending_operations"] == [], state
    assert state["orphan_pins"] == [], state
    assert state == base
    RESULTS[key] = f"pass ({outcome})"


def _matrix(cases: list[tuple[str, str]], short: dict[str, tuple[str, ...]],
            mark: pytest.MarkDecorator) -> list[Any]:  # fmt: skip
    return [pytest.param(a, b, marks=() if b in short.get(a, ()) else mark) for a, b in cases]


FAULT_CASES = [(f, x) for f in FLOWS for x in FAULTS]


@pytest.mark.parametrize(
    ("flow_name", "fault"), _matrix(FAULT_CASES, SHORT_FAULTS, pytest.mark.fault_pairs)
)
def test_flow_under_fault(
    case: Env, flow_name: str, fault: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    flow = FLOWS[flow_name]
    key = (flow_name, fault, "")
    if fault == "ipfs" and not flow.uploads and flow_name != "erase":
        RESULTS[key] = "n/a (the flow uses no IPFS)"
        pytest.skip("the flow neither uploads nor unpins: no IPFS fault applies")
    base = _baseline(case, flow, tmp_path)
    if fault == "none":
        state, outcome = base, "ok"
        assert state["pending_operations"] == []
        assert state["orphan_pins"] == []
        RESULTS[key] = "pass (baseline)"
        return
    state, outcome = _run_flow(case, flow, fault, tmp_path)
    _check(key, state, base, outcome)


SIGKILL_CASES = [(f, p) for f in FLOWS for p in _kill_points(FLOWS[f])]


@pytest.mark.parametrize(
    ("flow_name", "point"), _matrix(SIGKILL_CASES, SHORT_KILLS, pytest.mark.full_matrix)
)
def test_sigkill_then_resume(
    case: Env, flow_name: str, point: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    flow = FLOWS[flow_name]
    base = _baseline(case, flow, tmp_path)
    prep = _connect(case, tmp_path)
    args = flow.prepare(prep, cast(prep))
    prep.close()
    mr = _connect(case, tmp_path)
    c = cast(mr)
    before_ops = {op.id for op in mr.operations()}
    pins_before = _pins(case)
    child = subprocess.run(  # noqa: S603 - this interpreter, the test's own script
        [sys.executable, str(HERE / "sigkill_child.py"), case.rpc.url, str(case.manifest_path),
         str(tmp_path / "data"), str(tmp_path / "keys"), case.cut.url, flow_name,
         json.dumps(args), point],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    key = (flow_name, "sigkill", point)
    RESULTS[key] = f"fail (child exit {child.returncode})"
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    _recover(case, mr, c, flow, args, before_ops)
    state = _observe(mr, c, args, tmp_path, pins_before, case)
    mr.close()
    _check(key, state, base, f"killed at {point}")


def _write_table() -> None:
    out = os.environ.get("MEDRECORD_FAULTS_TABLE")
    if not out or not RESULTS:
        return
    columns = [*list(FAULTS[1:]), "sigkill"]
    rows: dict[str, dict[str, list[str]]] = {f: {c: [] for c in columns} for f in FLOWS}
    for (flow, column, point), result in RESULTS.items():
        if column == "none":
            continue
        mark = result.split(" ", 1)[0]
        cell = {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a"}.get(mark, mark)
        rows[flow][column].append(f"{point}: {cell}" if point else cell)
    lines = [
        "| flow | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for flow, cells in rows.items():
        lines.append(
            f"| {flow} | " + " | ".join("<br>".join(v) or "-" for v in cells.values()) + " |"
        )
    detail = [
        f"- {f} x {c}{' @ ' + p if p else ''}: {v}" for (f, c, p), v in sorted(RESULTS.items())
    ]
    Path(out).write_text(
        "\n".join(lines) + "\n\nOutcome of each case (what the flow raised under the fault, "
        "which faults fired):\n\n"
        + "\n".join(detail)
        + f"\n\nGenerated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
    )
