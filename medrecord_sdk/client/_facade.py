"""The MedRecord facade: one object that knows the chain, the contracts, the store and the time.

Build it with :meth:`MedRecord.embedded` (an in-process chain with the contracts deployed and a
local content-addressed store, ready in one call) or :meth:`MedRecord.connect` (any JSON-RPC
URL or ape network, a deployment manifest, any store). Then take an actor's view:
``mr.patient(account, keypair)``, ``mr.provider(...)``, ``mr.researcher(...)``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from eth_account.signers.local import LocalAccount
from web3 import Web3

from ..chain import (
    AuditReader,
    ConsentRegistry,
    DataShareToken,
    DecodedEvent,
    DeploymentManifest,
    EmbeddedChain,
    RecordRegistry,
    Signer,
    StudyEscrow,
    advance_time,
    deploy_contracts,
    verify_deployment,
)
from ..chain._abi import event_registry, event_topic, topic_for
from ..chain._journal import Journal, JournalOperation, OperationStatus, TxStatus
from ..chain._tx import RetryingHTTPProvider
from ..config import Settings
from ..crypto import KeyPair
from ..errors import (
    ConfigurationError,
    MedRecordError,
    OperationError,
    OperationNotFound,
    TransactionPending,
)
from ..storage import KuboStore, LocalStore, PinningServiceStore, Store
from ._audit import AuditEntry, audit_entry

if TYPE_CHECKING:
    from ..chain._claims import ClaimsEscrow
    from ..index import EventIndex, GraphIndex, IndexStatus, KeyRelease
    from ._actors import Patient, Provider, Researcher, _Actor
    from ._claims import Insurer
    from ._trustee import RecoveringPatient, Trustee

__all__ = ["MedRecord"]


class MedRecord:
    """The chain, the deployed contracts and a store, shared by every actor built from it."""

    def __init__(
        self,
        w3: Web3,
        manifest: DeploymentManifest,
        store: Store,
        *,
        keys_dir: Path | None = None,
        accounts: list[LocalAccount] | None = None,
        journal: Journal | None = None,
        confirmations: int = 0,
        tx_timeout: float = 120.0,
        index: EventIndex | GraphIndex | None = None,
        sync_index: bool = True,
        _owned: list[object] | None = None,
    ) -> None:
        self.w3 = w3
        self.index = index
        """The event index ``audit_trail``, ``events``, ``key_shares`` and ``shared_with``
        answer from (None: they ask the node, filtered by indexed topics). A cache only:
        no permission is ever decided from it. A :class:`~medrecord_sdk.index.GraphIndex`
        (``index_url = graph+https://...``) answers the same from a subgraph."""
        self.sync_index = sync_index
        """Sync an :class:`~medrecord_sdk.index.EventIndex` before each answer (else answer
        from what it holds; :meth:`index_status` says how far behind that is)."""
        self.manifest = manifest
        self.store = store
        self.keys_dir = keys_dir
        self.journal = journal if journal is not None else Journal(None)
        """Where every transaction and operation is written before it is sent."""
        self.confirmations = confirmations
        """Blocks on top of a transaction before its outcome is final (destruction waits)."""
        self.tx_timeout = tx_timeout
        self.accounts = accounts or []
        self._owned = _owned or []
        if manifest.chain_id != int(w3.eth.chain_id):
            raise ConfigurationError(
                f"the manifest is for chain {manifest.chain_id} but the node is chain "
                f"{w3.eth.chain_id}; pass the manifest of this chain"
            )
        self.consent = ConsentRegistry(w3, manifest.address_of("ConsentRegistry"))
        self.records = RecordRegistry(w3, manifest.address_of("RecordRegistry"))
        self.token = DataShareToken(w3, manifest.address_of("DataShareToken"))
        self.escrow = StudyEscrow(w3, manifest.address_of("StudyEscrow"))

    # ------------------------------------------------------------ construction

    @classmethod
    def embedded(cls, store_dir: Path | None = None, *, token_cap: int = 0) -> MedRecord:
        """An in-process chain with every contract deployed and a LocalStore, in one call.

        The store lives in ``store_dir``, or in a temporary directory removed by :meth:`close`.
        ``accounts`` holds the ten funded devnet accounts; ``accounts[0]`` deployed and holds
        the token's minter role.
        """
        chain = EmbeddedChain()
        owned: list[object] = []
        if store_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="medrecord-")
            owned.append(tmp)
            store_dir = Path(tmp.name)
        manifest = deploy_contracts(
            Signer(chain.w3, chain.accounts[0]), network="embedded", token_cap=token_cap
        )
        store = LocalStore(store_dir / "store")
        journal = Journal(store_dir / "journal.sqlite3")
        owned.insert(0, _Closing(journal.close))
        return cls(
            chain.w3,
            manifest,
            store,
            keys_dir=store_dir / "keys",
            accounts=chain.accounts,
            journal=journal,
            _owned=owned,
        )

    @classmethod
    def connect(
        cls,
        rpc_url: str | None = None,
        *,
        network: str | None = None,
        manifest: DeploymentManifest | Path | None = None,
        store: Store | None = None,
        settings: Settings | None = None,
    ) -> MedRecord:
        """Connects to a running chain whose contracts are described by a deployment manifest.

        ``rpc_url`` is any JSON-RPC endpoint; ``network`` an ape network choice such as
        ``ethereum:local:foundry`` (needs ape installed and a provider it can start or reach).
        The manifest is given, or read from ``settings.deployments_dir`` by the node's chain id.
        The store is given, or built from ``settings`` (local directory, Kubo, pinning service).
        """
        settings = settings or Settings()
        rpc_url = rpc_url or settings.rpc_url
        owned: list[object] = []
        if network is not None:
            w3, connection = _web3_from_ape(network)
            owned.extend([] if connection is None else [connection])
        elif rpc_url is not None:
            w3 = Web3(
                RetryingHTTPProvider(rpc_url, request_kwargs={"timeout": settings.request_timeout})
            )
        else:
            raise ConfigurationError(
                "connect() needs rpc_url= (or MEDRECORD_RPC_URL) or network=; "
                "for a chain in this process use MedRecord.embedded()"
            )
        if not w3.is_connected():
            raise ConfigurationError(f"no JSON-RPC node answers at {rpc_url or network}")
        if isinstance(manifest, Path):
            manifest = DeploymentManifest.load(manifest)
        elif manifest is None:
            manifest = (
                DeploymentManifest.load(settings.manifest)
                if settings.manifest
                else DeploymentManifest.for_chain(int(w3.eth.chain_id), settings.deployments_dir)
            )
        # A stale manifest (a devnet restarted, another deployment) fails here, clearly, rather
        # than as undecodable empty answers from every later call.
        verify_deployment(w3, manifest)
        journal = Journal(settings.journal_path())
        owned.insert(0, _Closing(journal.close))
        index = None
        if settings.use_index:
            from ..index import open_graph_index, open_index

            index = open_graph_index(settings, w3, manifest) or open_index(settings, w3, manifest)
            owned.append(_Closing(index.close))
        return cls(
            w3,
            manifest,
            store or store_from_settings(settings),
            keys_dir=settings.keys_dir,
            journal=journal,
            confirmations=settings.confirmations_for(manifest.chain_id),
            tx_timeout=settings.tx_timeout,
            index=index,
            _owned=owned,
        )

    # ------------------------------------------------------------ actors

    def patient(self, account: LocalAccount, keypair: KeyPair | None = None) -> Patient:
        from ._actors import Patient

        return Patient(self, account, keypair or KeyPair.generate())

    def provider(self, account: LocalAccount, keypair: KeyPair | None = None) -> Provider:
        from ._actors import Provider

        return Provider(self, account, keypair or KeyPair.generate())

    def researcher(self, account: LocalAccount, keypair: KeyPair | None = None) -> Researcher:
        from ._actors import Researcher

        return Researcher(self, account, keypair or KeyPair.generate())

    def insurer(self, account: LocalAccount, keypair: KeyPair | None = None) -> Insurer:
        """An insurer (issue 20): plans, pools and adjudication in the ClaimsEscrow."""
        from ._claims import Insurer

        return Insurer(self, account, keypair or KeyPair.generate())

    @property
    def claims(self) -> ClaimsEscrow:
        """The ClaimsEscrow of this deployment, built on first use (a manifest from before
        the claims escrow has none: DeploymentNotFound says to redeploy)."""
        escrow = self.__dict__.get("_claims")
        if escrow is None:
            from ..chain._claims import ClaimsEscrow

            escrow = ClaimsEscrow(self.w3, self.manifest.address_of("ClaimsEscrow"))
            self.__dict__["_claims"] = escrow
        return escrow

    def trustee(self, account: LocalAccount, keypair: KeyPair | None = None) -> Trustee:
        """A recovery trustee or break-glass custodian (issue 18)."""
        from ._trustee import Trustee

        return Trustee(self, account, keypair or KeyPair.generate())

    def recovering(self, account: LocalAccount, keypair: KeyPair) -> RecoveringPatient:
        """The account recovering a patient's records with its new key pair (issue 18)."""
        from ._trustee import RecoveringPatient

        return RecoveringPatient(self, account, keypair)

    def signer(self, account: LocalAccount) -> Signer:
        """A Signer for ``account`` that journals into this MedRecord's journal."""
        return Signer(
            self.w3,
            account,
            journal=self.journal,
            confirmations=self.confirmations,
            timeout=self.tx_timeout,
        )

    # ------------------------------------------------------------ operations

    def operations(self, status: str | None = None) -> list[JournalOperation]:
        """The journalled operations on this chain, oldest first (``status``: pending, done,
        failed, abandoned)."""
        return self.journal.operations(status=status, chain_id=self.chain_id)

    def operation(self, op_id: str) -> JournalOperation:
        """One operation by id or unique id prefix."""
        try:
            return self.journal.operation(op_id)
        except KeyError:
            raise OperationNotFound(
                f"no operation {op_id!r} in the journal {self.journal.path or '(in memory)'}; "
                "`medrecord ops list` shows them"
            ) from None

    def resume(self, *actors: _Actor) -> list[JournalOperation]:
        """Finishes the interrupted operations of ``actors`` on this chain; idempotent.

        Each pending operation of one of these accounts runs from its current step to its
        end (see ``client/_operations.py``). Operations still pending afterwards (their
        transaction has no final outcome yet) stay in the journal for a later resume; one
        that fails is marked failed with its error. Operations of other accounts are left
        alone: they need their own keys. Returns the operations it ran, as they now are.
        """
        from ._operations import run_operation

        by_address = {actor.address: actor for actor in actors}
        ran: list[JournalOperation] = []
        for op in self.operations(OperationStatus.PENDING):
            actor = by_address.get(Web3.to_checksum_address(op.actor))
            if actor is None:
                continue
            try:
                run_operation(actor, op.id, wait_final=True)
            except TransactionPending:
                pass  # still unknown: kept for the next resume
            except MedRecordError:
                pass  # marked failed, with its error, by run_operation
            ran.append(self.journal.operation(op.id))
        return ran

    def abandon(self, op_id: str, *, force: bool = False) -> JournalOperation:
        """Stops resuming an operation. Nothing is destroyed: content and keys stay.

        Refused while one of its transactions may still be mined (broadcast, no final
        outcome) unless ``force``: that transaction can still land after it is abandoned.
        """
        op = self.operation(op_id)
        if op.finished:
            raise OperationError(f"operation {op.id} is already {op.status}")
        live = [
            t.hash
            for t in op.transactions
            if t.status in (TxStatus.SIGNED, TxStatus.SENT)
            or (t.status in (TxStatus.MINED, TxStatus.REVERTED) and not t.final)
        ]
        if live and not force:
            raise OperationError(
                f"operation {op.id} has transaction {live[-1]} that may still be mined; "
                "resume it instead, or abandon with force (it can still land afterwards)"
            )
        return self.journal.update(
            op.id, status=OperationStatus.ABANDONED, error="abandoned by the user"
        )

    # ------------------------------------------------------------ time and audit

    @property
    def chain_id(self) -> int:
        return self.manifest.chain_id

    def now(self) -> int:
        """The latest block's timestamp: the clock every contract rule uses."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance_time(self, seconds: int) -> int:
        """Moves a local chain's clock (embedded, Anvil, Hardhat); tests never sleep."""
        return advance_time(self.w3, seconds)

    def _reader(self, topics: list[bytes | list[bytes] | None] | None = None) -> AuditReader:
        # One deployment may serve several names (RecordRegistry is the ConsentRegistry too).
        addresses = list(dict.fromkeys(d.address for d in self.manifest.contracts.values()))
        return AuditReader(
            self.w3, addresses, start_block=self.manifest.deploy_block, topics=topics
        )

    def events(self, topics: list[bytes | list[bytes] | None] | None = None) -> list[DecodedEvent]:
        """Every MedRecord event since deployment (optionally filtered by topics), in order."""
        index = self._fresh_index()
        if index is not None:
            return index.events(topics)
        return self._reader(topics).read().events

    def index_status(self) -> IndexStatus | None:
        """How far the index has read and how far behind the chain head it is (None: no index)."""
        if self.index is None:
            return None
        return self.index.status()

    def _fresh_index(self) -> EventIndex | GraphIndex | None:
        from ..index import EventIndex

        if isinstance(self.index, EventIndex) and self.sync_index:
            self.index.sync()
        return self.index

    def _filtered(self, argument: str, value: int | str) -> list[DecodedEvent]:
        """Events whose ``argument`` may be ``value``, asked of the node by indexed topics.

        For each topic position where some event indexes ``argument``, one filter (topic 0 =
        those events, that position = the value); events that carry ``argument`` (or, for a
        patient, ``patients``) unindexed are fetched by topic 0 alone. The caller filters the
        union on the decoded arguments; the node no longer returns everyone's events.
        """
        by_position: dict[int, list[bytes]] = {}
        unindexed: list[bytes] = []
        for topic, signature in event_registry().items():
            names = signature.names
            if argument in names:
                i = names.index(argument)
                if signature.indexed[i]:
                    position = 1 + sum(signature.indexed[:i])
                    by_position.setdefault(position, []).append(topic)
                else:
                    unindexed.append(topic)
            elif argument == "patient" and "patients" in names:
                unindexed.append(topic)
        filters: list[list[bytes | list[bytes] | None]] = []
        for position, topic0s in sorted(by_position.items()):
            entry: list[bytes | list[bytes] | None] = [topic0s, *([None] * (position - 1))]
            entry.append(topic_for(value))
            filters.append(entry)
        if unindexed:
            filters.append([unindexed])
        found: dict[tuple[int, int], DecodedEvent] = {}
        for topics in filters:
            for event in self._reader(topics).read().events:
                found[(event.block_number, event.log_index)] = event
        return [found[key] for key in sorted(found)]

    def audit_trail(
        self, *, patient: str | None = None, record_id: int | None = None
    ) -> list[AuditEntry]:
        """Who did what: the typed audit trail of a patient, of a record, or of everything.

        From the index when one is set (after a sync); otherwise from the node, asking only
        for the events that can concern that patient or record (by indexed topics).
        """
        index = self._fresh_index()
        if index is not None:
            found = index.audit_events(patient=patient, record_id=record_id)
            return [audit_entry(e) for e in found]
        events: Iterator[DecodedEvent]
        if record_id is not None:
            events = iter(self._filtered("recordId", record_id))
        elif patient is not None:
            events = iter(self._filtered("patient", Web3.to_checksum_address(patient)))
        else:
            events = iter(self._reader().read().events)
        if patient is not None:
            wanted = Web3.to_checksum_address(patient)
            events = (
                e
                for e in events
                if e.args.get("patient") == wanted or wanted in e.args.get("patients", ())
            )
        if record_id is not None:
            events = (e for e in events if e.args.get("recordId") == record_id)
        return [audit_entry(e) for e in events]

    def key_shares(self, record_id: int, grantee: str) -> list[DecodedEvent]:
        """The KeyShared events of one record toward one grantee, oldest first."""
        topics: list[bytes | list[bytes] | None] = [
            event_topic("KeyShared"),
            topic_for(record_id),
            None,  # the patient
            topic_for(Web3.to_checksum_address(grantee)),
        ]
        return self.events(topics)

    def shared_with(self, address: str) -> list[KeyRelease]:
        """Every key release toward ``address``, oldest first (several per record possible:
        a re-share after a key rotation or a new version; the newest counts).

        From the index when one is set, else from the node by the grantee topic. Holding a
        release proves nothing about access: the chain's consent is checked on every read.
        """
        grantee = Web3.to_checksum_address(address)
        index = self._fresh_index()
        if index is not None:
            return index.shared_with(grantee)
        from ..index import KeyRelease

        topics: list[bytes | list[bytes] | None] = [
            event_topic("KeyShared"),
            None,
            None,
            topic_for(grantee),
        ]
        return [
            KeyRelease(
                record_id=int(e["recordId"]),
                patient=str(e["patient"]),
                grantee=str(e["grantee"]),
                sharer=str(e["sharer"]),
                wrapped_key=bytes(e["wrappedKey"]),
                block_number=e.block_number,
                log_index=e.log_index,
                transaction_hash=e.transaction_hash,
            )
            for e in self._reader(topics).read().events
        ]

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Closes the store and removes what :meth:`embedded` created for itself."""
        self.store.close()
        for item in self._owned:
            cleanup = getattr(item, "cleanup", None)
            if cleanup is not None:
                cleanup()
        self._owned.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def store_from_settings(settings: Settings) -> Store:
    """The store ``settings`` describe."""
    if settings.store == "local":
        return LocalStore(settings.store_path, profile=settings.import_profile)
    kubo = KuboStore(
        settings.ipfs_api,
        auth=settings.ipfs_api_auth,
        profile=settings.import_profile,
        timeout=settings.request_timeout,
    )
    if settings.store == "kubo":
        return kubo
    if settings.pinning_endpoint is None or settings.pinning_token is None:
        raise ConfigurationError(
            "store = 'pinning' needs MEDRECORD_PINNING_ENDPOINT and MEDRECORD_PINNING_TOKEN"
        )
    return PinningServiceStore(
        settings.pinning_endpoint,
        settings.pinning_token.get_secret_value(),
        content_store=kubo,
    )


class _Closing:
    """Something this MedRecord opened (an index), closed with it."""

    def __init__(self, close: Any) -> None:
        self._close = close

    def cleanup(self) -> None:
        self._close()


class _ApeConnection:
    """An ape provider context this MedRecord opened, closed with it (a node ape started stops)."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def cleanup(self) -> None:
        self._context.__exit__(None, None, None)


def _web3_from_ape(network: str) -> tuple[Web3, _ApeConnection | None]:
    """The web3 of an ape network (ape is imported lazily: the SDK never needs it otherwise).

    When ape is already connected to that network (inside ``ape test`` or ``ape console``), its
    provider is reused; otherwise a provider context is opened, which may start a local node
    (Anvil, Hardhat), and is closed by :meth:`MedRecord.close`.
    """
    try:
        from ape import networks  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ConfigurationError(
            "network= needs eth-ape installed (pip install eth-ape); or pass rpc_url="
        ) from exc
    active = networks.active_provider
    if active is not None and active.is_connected and active.network_choice == network:
        return active.web3, None
    context = networks.parse_network_choice(network)
    provider = context.__enter__()
    return provider.web3, _ApeConnection(context)
