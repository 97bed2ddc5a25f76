"""RecordRegistry as a state machine, against a Python model of the contract.

Hypothesis drives adds (direct and signed), amendments, retractions, erasures and key releases by
every kind of actor, while the consents, the guardian and the clock change underneath. Each rule
predicts, from the model, either the exact custom error (with its arguments) or success; after
every step the chain's views must equal the model, and replaying the events emitted so far must
rebuild the same state. The paired concrete tests are in test_record_registry.py.

Bounded for the normal suite (about ten examples of 25 steps, each example in its own chain
snapshot); longer campaigns belong to forge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

RAW, DAG_PB = 0x55, 0x70
READ, WRITE = 1, 2
LABORATORY, IMAGING = 4, 6
TREAT, HRESCH = 0, 4
ACTIVE, AMENDED, RETRACTED, ERASED = 1, 2, 3, 4
DAY = 86_400
# Expiries sit half a day off the whole days the clock moves by, so no transaction lands near one.
HALF_DAY = DAY // 2
FAR = 2**63
GAS_LIMIT = 3_000_000

PATIENTS = ("patient", "other_patient")
ROLES = ("patient", "other_patient", "guardian", "provider", "researcher", "stranger")
# Weighted towards those who may act, so that successes are as frequent as refusals.
SENDERS = ("patient", "patient", "patient", "guardian", "guardian", "provider", "provider", *ROLES)
# Key releases draw who releases and to whom relative to the record, or any role at all.
SHARERS = ("owner", "owner", "owner", "owner", "guardian", "author", "author", *ROLES)
SHARE_TO = ("owner", "owner", "owner", "author", "researcher", "researcher", "researcher", *ROLES)
GRANTEES = ("provider", "researcher", "stranger", "guardian")
WITH_KEYS = ("patient", "other_patient", "guardian", "provider", "researcher")

ADD_RECORD_FIELDS = [
    ("patient", "address"),
    ("cidDigest", "bytes32"),
    ("cidCodec", "uint16"),
    ("contentHash", "bytes32"),
    ("category", "uint8"),
    ("supersedes", "uint256"),
    ("releases", "KeyRelease[]"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]
KEY_RELEASE_FIELDS = [("grantee", "address"), ("wrappedKey", "bytes"), ("consentNonce", "uint64")]


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


# The ABI types of the errors a key release can raise, to rebuild a batch's `reason` bytes.
ERROR_TYPES = {
    "RecordRegistryNonexistentRecord": [("recordId", "uint256")],
    "RecordRegistryInvalidStatus": [("recordId", "uint256"), ("status", "uint8")],
    "RecordRegistryUnauthorizedShare": [
        ("recordId", "uint256"),
        ("sharer", "address"),
        ("grantee", "address"),
    ],
}


def record_id(patient: str, index: int) -> int:
    """The contract's id of `patient`'s record number `index`: `patient << 96 | index`."""
    return int(patient, 16) << 96 | index


def encode_error(name: str, args: dict) -> bytes:
    fields = ERROR_TYPES[name]
    types = [t for _, t in fields]
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    return selector + encode(types, [args[n] for n, _ in fields])


def key_of(role: str) -> bytes:
    """The X25519 public key each role registers (any 32 non-zero bytes do for the contract)."""
    return h(f"x25519 {role}")


@dataclass(frozen=True)
class Rec:
    id: int
    patient: str
    author: str
    cid_digest: bytes
    cid_codec: int
    content_hash: bytes
    category: int
    created_at: int
    supersedes: int
    status: int


@dataclass
class State:
    """What the registry holds, as both the model and the event replay build it."""

    records: dict[int, Rec] = field(default_factory=dict)
    lists: dict[str, list[int]] = field(default_factory=dict)
    releases: list[tuple] = field(default_factory=list)

    def add(self, rec: Rec) -> None:
        if rec.supersedes:
            self.records[rec.supersedes] = replace(self.records[rec.supersedes], status=AMENDED)
        self.records[rec.id] = rec
        self.lists.setdefault(rec.patient, []).append(rec.id)

    def set_status(self, record_id: int, status: int) -> None:
        self.records[record_id] = replace(self.records[record_id], status=status)


def replay(logs: list[tuple[str, dict, int]]) -> State:
    """Rebuilds the registry's state from its events alone."""
    state = State()
    for name, args, timestamp in logs:
        if name == "RecordAdded":
            state.add(
                Rec(
                    id=args["recordId"],
                    patient=args["patient"],
                    author=args["author"],
                    cid_digest=bytes(args["cidDigest"]),
                    cid_codec=args["cidCodec"],
                    content_hash=bytes(args["contentHash"]),
                    category=args["category"],
                    created_at=timestamp,
                    supersedes=args["supersedes"],
                    status=ACTIVE,
                )
            )
        elif name == "RecordRetracted":
            state.set_status(args["recordId"], RETRACTED)
        elif name == "RecordErased":
            state.set_status(args["recordId"], ERASED)
        elif name == "KeyShared":
            state.releases.append(
                (
                    args["recordId"],
                    args["patient"],
                    args["grantee"],
                    args["sharer"],
                    bytes(args["wrappedKey"]),
                )
            )
    return state


class RecordMachine(RuleBasedStateMachine):
    # Set by the test before the run: the deployed contracts, the actors and a signer lookup.
    consents = None
    registry = None
    actors: dict = {}  # noqa: RUF012 (set per test run)
    keys = None

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = ape.chain.snapshot()
        self.addr = {role: str(account.address) for role, account in self.actors.items()}
        self.role_of = {address: role for role, address in self.addr.items()}
        self.state = State()
        self.verified: dict[int, Rec] = {}
        self.logs: list[tuple[str, dict, int]] = []
        self.consent: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self.guardian_appointed = False
        self.nonces = dict.fromkeys(PATIENTS, 0)
        self.counter = 0
        # A starting point where most actors may do something; the rules change it from there.
        self.toggle_guardian()
        self.grant("patient", "provider", 1 << LABORATORY, 1 << TREAT, READ | WRITE, 2)
        self.grant("patient", "researcher", 1 << LABORATORY | 1 << IMAGING, 1 << HRESCH, READ, 3)

    def teardown(self) -> None:
        try:
            self.all_views_match_the_model()
        finally:
            ape.chain.restore(self.snapshot)

    # ------------------------------------------------------------------ model helpers

    def now(self) -> int:
        return ape.chain.pending_timestamp

    def may_act_for(self, patient: str, who: str) -> bool:
        return who == patient or (
            self.guardian_appointed
            and who == self.addr["guardian"]
            and patient == self.addr["patient"]
        )

    def permitted(self, patient: str, grantee: str, category: int, action: int):
        """ConsentRegistry.isPermittedAnyPurpose: the category and the action, under any purpose."""
        if grantee == patient:
            return True
        cats, purposes, actions, expiry = self.consent.get((patient, grantee), (0, 0, 0, 0))
        return (
            expiry > self.now()
            and cats >> category & 1
            and purposes != 0
            and actions & action == action
        )

    def may_write(self, patient: str, author: str, category: int) -> bool:
        return self.permitted(patient, author, category, WRITE) or self.may_act_for(patient, author)

    def pick(self, choice: int) -> int:
        """A record id from a drawn number: mostly existing ones, sometimes 0 or the next id of
        the patient (an id that names a patient but was never assigned)."""
        ids = list(self.state.records)
        if not ids or choice % 6 == 0:
            patient = self.addr["patient"]
            unassigned = record_id(patient, len(self.state.lists.get(patient, [])))
            return (0, unassigned)[choice // 6 % 2]
        return ids[choice % len(ids)]

    def supersede_error(self, patient: str, category: int, supersedes: int):
        if not supersedes:
            return None
        previous = self.state.records.get(supersedes)
        if previous is None:
            return ("RecordRegistryNonexistentRecord", {"recordId": supersedes})
        if previous.patient != patient:
            return ("RecordRegistryPatientMismatch", {"supersedes": supersedes, "patient": patient})
        if previous.category != category:
            return (
                "RecordRegistryCategoryMismatch",
                {"supersedes": supersedes, "category": category},
            )
        if previous.status != ACTIVE:
            return (
                "RecordRegistryInvalidStatus",
                {"recordId": supersedes, "status": previous.status},
            )
        return None

    def transact(self, expected, contract, method: str, *args, sender):
        """Sends a transaction that must succeed (expected None) or fail with `expected`."""
        if expected is not None:
            name, kwargs = expected
            with ape.reverts(getattr(contract, name), **kwargs):
                getattr(contract, method)(*args, sender=sender)
            return None
        # A known gas limit skips the estimate: the model already says the call succeeds.
        receipt = getattr(contract, method)(*args, sender=sender, gas=GAS_LIMIT)
        if contract is self.registry:
            for log in receipt.decode_logs():
                self.logs.append((log.event_name, dict(log.event_arguments), receipt.timestamp))
        return receipt

    def record_added(self, receipt, patient: str, author: str, fields: dict, supersedes: int):
        (log,) = receipt.decode_logs(self.registry.RecordAdded)
        # ids: the patient's address, then the patient's count of records before this one
        assert log.recordId == record_id(patient, len(self.state.lists.get(patient, [])))
        self.state.add(
            Rec(
                id=log.recordId,
                patient=patient,
                author=author,
                cid_digest=fields["digest"],
                cid_codec=fields["codec"],
                content_hash=fields["content"],
                category=fields["category"],
                created_at=receipt.timestamp,
                supersedes=supersedes,
                status=ACTIVE,
            )
        )

    def new_fields(self, category: int, codec: int) -> dict:
        self.counter += 1
        digest = h(f"cid {self.counter}")
        content = digest if codec == RAW else h(f"ciphertext {self.counter}")
        return {"digest": digest, "content": content, "codec": codec, "category": category}

    # ------------------------------------------------------------------ rules: records

    @rule(
        who=st.sampled_from(("patient", "patient", "other_patient")),
        sender=st.sampled_from(SENDERS),
        category=st.sampled_from([LABORATORY, IMAGING]),
        codec=st.sampled_from([RAW, DAG_PB]),
        supersede=st.none() | st.integers(0, 50),
        extra=st.sampled_from((None, "author", "researcher", "stranger")),
    )
    def add_record(self, who, sender, category, codec, supersede, extra):
        """A record with its initial releases: the patient's, and maybe one more (toward the
        author, or a grantee that the author may or may not release to)."""
        patient, author = self.addr[who], self.addr[sender]
        supersedes = 0 if supersede is None else self.pick(supersede)
        expected = None
        if not self.may_write(patient, author, category):
            expected = (
                "RecordRegistryUnauthorizedAuthor",
                {"caller": author, "patient": patient, "category": category},
            )
        expected = expected or self.supersede_error(patient, category, supersedes)
        wrapped = self.wrapped_key()
        releases = [(patient, wrapped)]
        extra_role = sender if extra == "author" else extra
        if extra_role is not None:
            to = self.addr[extra_role]
            releases.append((to, wrapped))
            allowed = to in (patient, author) or (
                self.may_act_for(patient, author) and self.permitted(patient, to, category, READ)
            )
            if not allowed:
                expected = expected or ("RecordRegistryShareRejected", {"index": 1})
        fields = self.new_fields(category, codec)
        args = (patient, fields["digest"], codec, fields["content"], category, supersedes)
        receipt = self.transact(
            expected, self.registry, "addRecord", *args, releases, sender=self.actors[sender]
        )
        if receipt is not None:
            self.record_added(receipt, patient, author, fields, supersedes)
            record = self.state.lists[patient][-1]
            self.released(record, sender, self.role_of[patient], wrapped)
            if extra_role is not None:
                self.released(record, sender, extra_role, wrapped)

    @rule(
        who=st.sampled_from(PATIENTS),
        category=st.sampled_from([LABORATORY, IMAGING]),
        supersede=st.none() | st.integers(0, 50),
    )
    def add_record_by_signature(self, who, category, supersede):
        patient = self.addr[who]
        supersedes = 0 if supersede is None else self.pick(supersede)
        fields = self.new_fields(category, RAW)
        message = {
            "patient": patient,
            "cidDigest": fields["digest"],
            "cidCodec": RAW,
            "contentHash": fields["content"],
            "category": category,
            "supersedes": supersedes,
            # The patient's own release: its pair (patient, patient) never has a consent nonce.
            "releases": [{"grantee": patient, "wrappedKey": b"\x01" * 81, "consentNonce": 0}],
            "nonce": self.nonces[who],
            "deadline": FAR,
        }
        domain = {
            "name": "MedRecord ConsentRegistry",
            "version": "1",
            "chainId": ape.chain.chain_id,
            "verifyingContract": str(self.registry.address),
        }
        types = {
            "AddRecord": [{"name": n, "type": t} for n, t in ADD_RECORD_FIELDS],
            "KeyRelease": [{"name": n, "type": t} for n, t in KEY_RELEASE_FIELDS],
        }
        signature = self.keys(patient).sign_typed_data(domain, types, message).signature
        args = [message[n] for n, _ in ADD_RECORD_FIELDS if n != "nonce"]
        args[6] = [(patient, b"\x01" * 81)]
        expected = self.supersede_error(patient, category, supersedes)
        receipt = self.transact(
            expected,
            self.registry,
            "addRecordBySig",
            *args,
            signature,
            sender=self.actors["stranger"],
        )
        if receipt is not None:
            self.nonces[who] += 1
            self.record_added(receipt, patient, patient, fields, supersedes)
            record = self.state.lists[patient][-1]
            self.released(record, who, who, b"\x01" * 81)

    def status_change(self, choice, sender, method, allowed, status):
        record_id = self.pick(choice)
        caller = self.addr[sender]
        rec = self.state.records.get(record_id)
        if rec is None:
            expected = ("RecordRegistryNonexistentRecord", {"recordId": record_id})
        elif not self.may_act_for(rec.patient, caller):
            expected = ("RecordRegistryUnauthorized", {"caller": caller, "patient": rec.patient})
        elif rec.status not in allowed:
            expected = (
                "RecordRegistryInvalidStatus",
                {"recordId": record_id, "status": rec.status},
            )
        else:
            expected = None
        receipt = self.transact(
            expected, self.registry, method, record_id, sender=self.actors[sender]
        )
        if receipt is not None:
            self.state.set_status(record_id, status)

    @precondition(lambda self: self.state.records)
    @rule(choice=st.integers(0, 50), sender=st.sampled_from(SENDERS))
    def retract(self, choice, sender):
        self.status_change(choice, sender, "retractRecord", (ACTIVE, AMENDED), RETRACTED)

    @precondition(lambda self: self.state.records)
    @rule(choice=st.integers(0, 50), sender=st.sampled_from(SENDERS))
    def erase(self, choice, sender):
        self.status_change(choice, sender, "eraseRecord", (ACTIVE, AMENDED, RETRACTED), ERASED)

    def resolve(self, kind: str, record_id: int) -> str:
        """The role behind a relative draw: the record's patient ("owner") or author, or a role."""
        rec = self.state.records.get(record_id)
        if kind == "owner":
            return self.role_of[rec.patient] if rec else "patient"
        if kind == "author":
            return self.role_of[rec.author] if rec else "provider"
        return kind

    def share_error(self, record_id: int, sharer: str, grantee: str):
        """The error a key release raises, in the contract's order of checks, or None."""
        rec = self.state.records.get(record_id)
        sharer_addr, to = self.addr[sharer], self.addr[grantee]
        if rec is None:
            return ("RecordRegistryNonexistentRecord", {"recordId": record_id})
        if rec.status not in (ACTIVE, AMENDED):
            return ("RecordRegistryInvalidStatus", {"recordId": record_id, "status": rec.status})
        by_patient = self.may_act_for(rec.patient, sharer_addr) and self.permitted(
            rec.patient, to, rec.category, READ
        )
        by_author = sharer_addr == rec.author and to in (rec.patient, rec.author)
        if not (by_patient or by_author):
            return (
                "RecordRegistryUnauthorizedShare",
                {"recordId": record_id, "sharer": sharer_addr, "grantee": to},
            )
        return None

    def released(self, record_id: int, sharer: str, grantee: str, wrapped: bytes):
        rec = self.state.records[record_id]
        self.state.releases.append(
            (
                record_id,
                rec.patient,
                self.addr[grantee],
                self.addr[sharer],
                wrapped,
            )
        )

    def wrapped_key(self) -> bytes:
        self.counter += 1
        return b"\x01" + h(f"wrapped {self.counter}") * 2

    @precondition(lambda self: self.state.records)
    @rule(
        choice=st.integers(0, 50),
        sender=st.sampled_from(SHARERS),
        grantee=st.sampled_from(SHARE_TO),
    )
    def share_key(self, choice, sender, grantee):
        record_id = self.pick(choice)
        sender, grantee = self.resolve(sender, record_id), self.resolve(grantee, record_id)
        wrapped = self.wrapped_key()
        expected = self.share_error(record_id, sender, grantee)
        receipt = self.transact(
            expected,
            self.registry,
            "shareKey",
            record_id,
            self.addr[grantee],
            wrapped,
            sender=self.actors[sender],
        )
        if receipt is not None:
            self.released(record_id, sender, grantee, wrapped)

    @precondition(lambda self: self.state.records)
    @rule(
        sender=st.sampled_from(SHARERS),
        items=st.lists(
            st.tuples(st.integers(0, 50), st.sampled_from(SHARE_TO)),
            min_size=1,
            max_size=2,
        ),
    )
    def share_keys_in_a_batch(self, sender, items):
        picked = [(self.pick(c), grantee) for c, grantee in items]
        sender = self.resolve(sender, picked[0][0])  # relative to the first item's record
        shares = [
            (record_id, self.resolve(grantee, record_id), self.wrapped_key())
            for record_id, grantee in picked
        ]
        expected = None
        for index, (record_id, grantee, _) in enumerate(shares):
            failure = self.share_error(record_id, sender, grantee)
            if failure is not None:
                reason = encode_error(*failure)
                expected = ("RecordRegistryShareRejected", {"index": index, "reason": reason})
                break
        args = [(r, self.addr[g], w) for r, g, w in shares]
        receipt = self.transact(
            expected, self.registry, "shareKeys", args, sender=self.actors[sender]
        )
        if receipt is not None:  # all or nothing
            for record_id, grantee, wrapped in shares:
                self.released(record_id, sender, grantee, wrapped)

    # ------------------------------------------------------------------ rules: the world changes

    @rule(
        who=st.sampled_from(PATIENTS),
        grantee=st.sampled_from(GRANTEES),
        categories=st.sampled_from([1 << LABORATORY, 1 << IMAGING, 1 << LABORATORY | 1 << IMAGING]),
        purposes=st.sampled_from([1 << TREAT, 1 << HRESCH, 1 << TREAT | 1 << HRESCH]),
        actions=st.sampled_from([READ, WRITE, READ | WRITE]),
        days=st.integers(1, 4),
    )
    def grant(self, who, grantee, categories, purposes, actions, days):
        expiry = self.now() + days * DAY + HALF_DAY
        self.consents.grant(
            self.actors[grantee], categories, purposes, actions, expiry, sender=self.actors[who]
        )
        self.consent[(self.addr[who], self.addr[grantee])] = (categories, purposes, actions, expiry)

    @rule(who=st.sampled_from(PATIENTS), grantee=st.sampled_from(GRANTEES))
    def revoke(self, who, grantee):
        pair = (self.addr[who], self.addr[grantee])
        if pair in self.consent:
            self.consents.revoke(self.actors[grantee], sender=self.actors[who])
            del self.consent[pair]

    @rule()
    def toggle_guardian(self):
        method = "removeGuardian" if self.guardian_appointed else "appointGuardian"
        getattr(self.consents, method)(self.actors["guardian"], sender=self.actors["patient"])
        self.guardian_appointed = not self.guardian_appointed

    @rule(days=st.integers(1, 3))
    def advance_clock(self, days):
        ape.chain.mine(deltatime=days * DAY)

    @rule(
        who=st.sampled_from(PATIENTS),
        offset=st.integers(0, 8),
        limit=st.integers(0, 8),
        choice=st.integers(0, 50),
    )
    def read_a_page_and_a_record(self, who, offset, limit, choice):
        record_id = self.pick(choice)
        if record_id in self.state.records:
            assert self.as_rec(self.registry.getRecord(record_id)) == self.state.records[record_id]
        else:
            with ape.reverts(self.registry.RecordRegistryNonexistentRecord, recordId=record_id):
                self.registry.getRecord(record_id)
        ids = self.state.lists.get(self.addr[who], [])
        page = self.registry.recordsOf(self.addr[who], offset, limit)
        assert [self.as_rec(r) for r in page] == [
            self.state.records[i] for i in ids[offset : offset + limit]
        ]

    # ------------------------------------------------------------------ invariants

    @invariant()
    def views_match_the_model(self):
        # Every step: the counts, and each record the model says changed. Every record of every
        # patient is compared at the end of the example (teardown) and by `read_a_page...`.
        for who in PATIENTS:
            patient = self.addr[who]
            assert self.registry.recordCount(patient) == len(self.state.lists.get(patient, []))
        for record_id, rec in self.state.records.items():
            if self.verified.get(record_id) != rec:
                assert self.as_rec(self.registry.getRecord(record_id)) == rec
                self.verified[record_id] = rec

    def all_views_match_the_model(self):
        for who in PATIENTS:
            patient = self.addr[who]
            ids = self.state.lists.get(patient, [])
            page = self.registry.recordsOf(patient, 0, 1000)
            assert [self.as_rec(r) for r in page] == [self.state.records[i] for i in ids]

    @invariant()
    def events_rebuild_the_state(self):
        assert replay(self.logs) == self.state

    # ------------------------------------------------------------------ conversions

    @staticmethod
    def as_rec(r) -> Rec:
        return Rec(
            id=r.id,
            patient=r.patient,
            author=r.author,
            cid_digest=bytes(r.cidDigest),
            cid_codec=r.cidCodec,
            content_hash=bytes(r.contentHash),
            category=r.category,
            created_at=r.createdAt,
            supersedes=r.supersedes,
            status=r.status,
        )


@pytest.fixture(scope="module")
def machine_world(project, accounts, deployer, keys):
    registry = project.RecordRegistry.deploy(sender=deployer)
    consents = registry  # one deployment answers both interfaces
    actors = {
        "patient": accounts[1],
        "provider": accounts[2],
        "researcher": accounts[3],
        "guardian": accounts[4],
        "stranger": accounts[6],
        "other_patient": accounts[7],
    }
    for role in WITH_KEYS:
        consents.setEncryptionKey(key_of(role), sender=actors[role])
    return consents, registry, actors


def test_record_registry_against_its_model(machine_world, keys):
    consents, registry, actors = machine_world
    RecordMachine.consents = consents
    RecordMachine.registry = registry
    RecordMachine.actors = actors
    RecordMachine.keys = staticmethod(keys)
    run_state_machine_as_test(
        RecordMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
