"""RecordRegistry: who may add, amend, retract, erase and release keys; signatures; pagination.

Every permission is tried both ways. The deployment is module-scoped and ape reverts the chain
after each test, so each test starts from the same state: a patient with a guardian, a provider
holding READ+WRITE on laboratory data for treatment, a researcher holding READ on laboratory data
for research, and registered encryption keys for all of them but `stranger`.
"""

from __future__ import annotations

import hashlib

import ape
import pytest
from ape.types import AddressType
from eth_abi import encode
from eth_utils import keccak

RAW, DAG_PB = 0x55, 0x70
READ, WRITE = 1, 2
LABORATORY, IMAGING, MENTAL_HEALTH = 4, 6, 11
TREAT, HRESCH = 0, 4
ACTIVE, AMENDED, RETRACTED, ERASED = 1, 2, 3, 4  # RecordStatus; 0 is None (unknown id)
DAY = 86_400
FAR = 2**63
ZERO32 = b"\x00" * 32
WRAPPED = b"\x01" + bytes(range(80))  # the size of an HPKE-wrapped 32-byte key


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def key_of(account) -> bytes:
    return h(f"x25519 public key of {account.address}")


def rid(account, index: int) -> int:
    """The id of `account`'s record number `index`: the contract's `patient << 96 | index`."""
    return int(str(account.address), 16) << 96 | index


def error_data(signature: str, types: list[str], values: list) -> bytes:
    """The ABI encoding of a custom error, as carried in RecordRegistryShareRejected.reason."""
    return keccak(text=signature)[:4] + encode(types, values)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def consents(project, deployer, patient, provider, researcher, guardian):
    # One deployment answers both interfaces: RecordRegistry is a ConsentRegistry, so the
    # consents the rules ask are this contract's own (no call to another contract).
    registry = project.RecordRegistry.deploy(sender=deployer)
    for account in (patient, provider, researcher, guardian):
        registry.setEncryptionKey(key_of(account), sender=account)
    registry.appointGuardian(guardian, sender=patient)
    expiry = ape.chain.pending_timestamp + 30 * DAY
    registry.grant(provider, 1 << LABORATORY, 1 << TREAT, READ | WRITE, expiry, sender=patient)
    registry.grant(researcher, 1 << LABORATORY, 1 << HRESCH, READ, expiry, sender=patient)
    return registry


@pytest.fixture(scope="module", autouse=True)
def registry(project, deployer, consents, keys, stranger, relayer):
    # Autouse and depending on every session-scoped fixture the tests use: all fixtures wider than
    # a test are set up before ape takes the module snapshot, so ape never rebases its isolation.
    return consents


@pytest.fixture
def add(registry, patient):
    """Adds a record and returns its id; `label` makes distinct CIDs."""

    def _add(sender=None, who=None, category=LABORATORY, codec=RAW, supersedes=0, label="r"):
        who = who or patient
        digest = h(f"cid {label}")
        content = digest if codec == RAW else h(f"content {label}")
        receipt = registry.addRecord(
            who, digest, codec, content, category, supersedes, [(who, WRAPPED)],
            sender=sender or who,
        )  # fmt: skip
        return receipt.decode_logs(registry.RecordAdded)[0].recordId

    return _add


@pytest.fixture
def record(add):
    """A laboratory record of the patient, written by the patient."""
    return add()


@pytest.fixture
def sign(keys, registry):
    """Signs an EIP-712 message of the RecordRegistry with a test account's key."""

    def _sign(signer, primary: str, message: dict) -> bytes:
        # The deployment's one domain, as ERC-5267 reports it (written out: the test must not
        # trust the SDK's copy).
        domain = {
            "name": "MedRecord ConsentRegistry",
            "version": "1",
            "chainId": ape.chain.chain_id,
            "verifyingContract": str(registry.address),
        }
        fields = ADD_RECORD_FIELDS if primary == "AddRecord" else SHARE_KEY_FIELDS
        types = {primary: [{"name": n, "type": t} for n, t in fields]}
        if primary == "AddRecord":
            types["KeyRelease"] = [{"name": n, "type": t} for n, t in KEY_RELEASE_FIELDS]
        return keys(signer).sign_typed_data(domain, types, message).signature

    return _sign


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
SHARE_KEY_FIELDS = [
    ("recordId", "uint256"),
    ("grantee", "address"),
    ("wrappedKey", "bytes"),
    ("consentNonce", "uint64"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]


# ---------------------------------------------------------------------------- deployment


def test_deployment(registry):
    assert registry.consentRegistry() == registry.address
    assert registry.recordCount(ape.accounts.test_accounts[1]) == 0


def test_one_eip712_domain_reported_by_erc5267(registry):
    # Issue 15, finding 5: every signature the deployment verifies is under the domain that
    # ERC-5267 reports (fields 0x0f: name, version, chain id, verifying contract); no second,
    # hand-built records domain. Before the fix a recordDomainSeparator() existed and differed.
    domain_type = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    fields, name, version, chain_id, contract, _salt, _extensions = registry.eip712Domain()
    assert (fields, name, version) == (b"\x0f", "MedRecord ConsentRegistry", "1")
    assert (chain_id, contract) == (ape.chain.chain_id, registry.address)
    parts = [domain_type, keccak(text=name), keccak(text=version), chain_id]
    assert registry.DOMAIN_SEPARATOR() == keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"], [*parts, str(contract)]
    ))  # fmt: skip
    assert not any(a.name == "recordDomainSeparator" for a in registry.contract_type.abi
                   if a.type == "function")  # fmt: skip


def test_signed_add_under_the_erc5267_domain_is_accepted(registry, keys, patient, relayer):
    # A wallet that asks the contract for its domain (viem's getEip712Domain) and signs an
    # AddRecord under it: refused before the fix (RecordRegistryInvalidSignature).
    _, name, version, chain_id, contract, _, _ = registry.eip712Domain()
    domain = {"name": name, "version": version, "chainId": chain_id, "verifyingContract": contract}
    message = _add_message(registry, patient)
    types = {
        "AddRecord": [{"name": n, "type": t} for n, t in ADD_RECORD_FIELDS],
        "KeyRelease": [{"name": n, "type": t} for n, t in KEY_RELEASE_FIELDS],
    }
    signature = keys(patient).sign_typed_data(domain, types, message).signature
    registry.addRecordBySig(*_add_args(message), signature, sender=relayer)
    assert registry.getRecord(rid(patient, 0)).author == patient


# ---------------------------------------------------------------------------- addRecord


def test_patient_adds_a_record(registry, patient):
    digest = h("cid a")
    receipt = registry.addRecord(
        patient, digest, RAW, digest, LABORATORY, 0, [(patient, WRAPPED)], sender=patient
    )
    assert receipt.events == [
        registry.RecordAdded(
            recordId=rid(patient, 0),
            patient=patient,
            author=patient,
            category=LABORATORY,
            cidDigest=digest,
            cidCodec=RAW,
            contentHash=digest,
            supersedes=0,
        ),
        registry.KeyShared(
            recordId=rid(patient, 0),
            patient=patient,
            grantee=patient,
            sharer=patient,
            wrappedKey=WRAPPED,
        ),
    ]
    stored = registry.getRecord(rid(patient, 0))
    assert stored.id == rid(patient, 0)
    assert stored.patient == patient
    assert stored.author == patient
    assert stored.cidDigest == digest
    assert stored.cidCodec == RAW
    assert stored.contentHash == digest
    assert stored.category == LABORATORY
    assert stored.createdAt == ape.chain.blocks[receipt.block_number].timestamp
    assert stored.supersedes == 0
    assert stored.status == ACTIVE
    assert registry.recordCount(patient) == 1


def test_dag_pb_record_keeps_a_distinct_content_hash(registry, patient):
    digest, content = h("root node"), h("ciphertext")
    registry.addRecord(
        patient, digest, DAG_PB, content, IMAGING, 0, [(patient, WRAPPED)], sender=patient
    )
    stored = registry.getRecord(rid(patient, 0))
    assert (stored.cidDigest, stored.cidCodec, stored.contentHash) == (digest, DAG_PB, content)


def test_raw_record_with_a_content_hash_other_than_the_digest_is_kept_as_given(registry, patient):
    registry.addRecord(
        patient, h("d"), RAW, h("c"), LABORATORY, 0, [(patient, WRAPPED)], sender=patient
    )
    assert registry.getRecord(rid(patient, 0)).contentHash == h("c")


def test_guardian_adds_a_record_as_author(registry, add, patient, guardian):
    record_id = add(sender=guardian)
    stored = registry.getRecord(record_id)
    assert (stored.patient, stored.author) == (patient, guardian)


def test_provider_with_write_adds_a_record(registry, add, patient, provider):
    record_id = add(sender=provider)
    stored = registry.getRecord(record_id)
    assert (stored.patient, stored.author, stored.category) == (patient, provider, LABORATORY)


def test_provider_without_consent_cannot_add(registry, patient, stranger):
    with ape.reverts(
        registry.RecordRegistryUnauthorizedAuthor,
        caller=stranger,
        patient=patient,
        category=LABORATORY,
    ):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), LABORATORY, 0, [(patient, WRAPPED)], sender=stranger
        )


def test_provider_with_write_for_another_category_cannot_add(registry, patient, provider):
    with ape.reverts(
        registry.RecordRegistryUnauthorizedAuthor,
        caller=provider,
        patient=patient,
        category=MENTAL_HEALTH,
    ):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), MENTAL_HEALTH, 0, [(patient, WRAPPED)], sender=provider
        )


def test_grantee_with_read_only_cannot_add(registry, patient, researcher):
    with ape.reverts(
        registry.RecordRegistryUnauthorizedAuthor,
        caller=researcher,
        patient=patient,
        category=LABORATORY,
    ):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), LABORATORY, 0, [(patient, WRAPPED)], sender=researcher
        )


def test_provider_with_expired_consent_cannot_add(registry, consents, add, patient, provider):
    expiry = consents.consentOf(patient, provider).expiry
    ape.chain.pending_timestamp = expiry - 100
    add(sender=provider, label="just in time")
    ape.chain.pending_timestamp = expiry + 1
    with ape.reverts(
        registry.RecordRegistryUnauthorizedAuthor,
        caller=provider,
        patient=patient,
        category=LABORATORY,
    ):
        registry.addRecord(
            patient, h("late"), RAW, h("late"), LABORATORY, 0, [(patient, WRAPPED)], sender=provider
        )


def test_provider_with_revoked_consent_cannot_add(registry, consents, patient, provider):
    consents.revoke(provider, sender=patient)
    with ape.reverts(registry.RecordRegistryUnauthorizedAuthor, caller=provider):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), LABORATORY, 0, [(patient, WRAPPED)], sender=provider
        )


def test_removed_guardian_cannot_add(registry, consents, patient, guardian):
    consents.removeGuardian(guardian, sender=patient)
    with ape.reverts(registry.RecordRegistryUnauthorizedAuthor, caller=guardian, patient=patient):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), LABORATORY, 0, [(patient, WRAPPED)], sender=guardian
        )


def test_patient_cannot_add_for_another_patient(registry, patient, researcher):
    with ape.reverts(registry.RecordRegistryUnauthorizedAuthor, caller=patient, patient=researcher):
        registry.addRecord(
            researcher, h("x"), RAW, h("x"), LABORATORY, 0, [(researcher, WRAPPED)], sender=patient
        )


def test_category_beyond_the_mask_is_rejected(registry, patient):
    with ape.reverts(registry.RecordRegistryInvalidCategory, category=64):
        registry.addRecord(
            patient, h("x"), RAW, h("x"), 64, 0, [(patient, WRAPPED)], sender=patient
        )


def test_codecs_other_than_raw_and_dag_pb_are_rejected(registry, patient):
    for codec in (0, 0x71, 0x0129):
        with ape.reverts(registry.RecordRegistryInvalidCodec, codec=codec):
            registry.addRecord(
                patient, h("x"), codec, h("x"), LABORATORY, 0, [(patient, WRAPPED)], sender=patient
            )


def test_zero_digest_or_content_hash_is_rejected(registry, patient):
    for digest, content in ((ZERO32, h("c")), (h("d"), ZERO32), (ZERO32, ZERO32)):
        with ape.reverts(registry.RecordRegistryZeroHash):
            registry.addRecord(
                patient,
                digest,
                DAG_PB,
                content,
                LABORATORY,
                0,
                [(patient, WRAPPED)],
                sender=patient,
            )


def test_ids_name_the_patient_and_count_its_records(registry, add, patient, researcher):
    added = [add(label="p1"), add(who=researcher, label="r1"), add(label="p2")]
    assert added == [rid(patient, 0), rid(researcher, 0), rid(patient, 1)]
    assert [r.id for r in registry.recordsOf(patient, 0, 10)] == [rid(patient, 0), rid(patient, 1)]
    assert [r.id for r in registry.recordsOf(researcher, 0, 10)] == [rid(researcher, 0)]
    assert all(registry.getRecord(i).patient == hex_address(i >> 96) for i in added)
    # An id that names the patient but an index not yet assigned is unknown.
    with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=rid(patient, 2)):
        registry.getRecord(rid(patient, 2))


def test_a_patient_has_at_most_two_to_the_32_minus_one_records(registry, add, patient, chain):
    if chain.provider.name == "test":
        pytest.skip("the py-evm provider cannot write storage; this runs on Anvil")
    # 2**32 - 1 records cost some 3 * 10**14 gas: the limit is reached here by writing the
    # patient's count into storage. Slots: EIP712's two strings, _consents, _guardians,
    # _encryptionKeys, Nonces' _nonces, _records, then _recordCounts (7).
    add(label="one")
    slot = int.from_bytes(keccak(bytes(12) + bytes.fromhex(patient.address[2:]) + (7).to_bytes(32)))
    assert int.from_bytes(chain.provider.get_storage(registry.address, slot)) == 1  # the layout
    chain.provider.set_storage(registry.address, slot, (2**32 - 3).to_bytes(32))
    assert registry.recordCount(patient) == 2**32 - 3
    before_last = add(label="before last")
    last = add(label="last", supersedes=before_last)  # index 2**32 - 2: the last one
    assert last == rid(patient, 2**32 - 2)
    assert registry.getRecord(last).supersedes == before_last  # index + 1 fits in 32 bits
    with ape.reverts(registry.RecordRegistryTooManyRecords, patient=patient):
        add(label="one too many")
    assert registry.recordCount(patient) == 2**32 - 1


def hex_address(number: int) -> str:
    return ape.convert(f"0x{number:040x}", AddressType)


# ---------------------------------------------------------------------------- supersede


def test_supersede_amends_the_previous_version(registry, add, record, patient):
    new_id = add(supersedes=record, label="v2")
    assert registry.getRecord(record).status == AMENDED
    stored = registry.getRecord(new_id)
    assert (stored.status, stored.supersedes, stored.author) == (ACTIVE, record, patient)


def test_supersede_event_names_the_previous_version(registry, record, patient):
    receipt = registry.addRecord(
        patient, h("v2"), RAW, h("v2"), LABORATORY, record, [(patient, WRAPPED)], sender=patient
    )
    assert receipt.events == [
        registry.RecordAdded(
            recordId=record + 1,
            patient=patient,
            author=patient,
            category=LABORATORY,
            cidDigest=h("v2"),
            cidCodec=RAW,
            contentHash=h("v2"),
            supersedes=record,
        ),
        registry.KeyShared(
            recordId=record + 1,
            patient=patient,
            grantee=patient,
            sharer=patient,
            wrappedKey=WRAPPED,
        ),
    ]


def test_provider_with_write_supersedes_the_patients_record(registry, add, record, provider):
    new_id = add(sender=provider, supersedes=record, label="v2")
    assert registry.getRecord(new_id).author == provider
    assert registry.getRecord(record).status == AMENDED


def test_superseding_another_patients_record_is_rejected(registry, add, record, researcher):
    with ape.reverts(registry.RecordRegistryPatientMismatch, supersedes=record, patient=researcher):
        add(who=researcher, supersedes=record, label="theirs")


def test_provider_cannot_supersede_across_patients(
    registry, consents, add, record, provider, researcher
):
    # The provider may write laboratory data for the researcher too, but not chain onto the patient.
    expiry = ape.chain.pending_timestamp + DAY
    consents.grant(provider, 1 << LABORATORY, 1 << TREAT, WRITE, expiry, sender=researcher)
    with ape.reverts(registry.RecordRegistryPatientMismatch, supersedes=record, patient=researcher):
        add(sender=provider, who=researcher, supersedes=record, label="x")


def test_superseding_with_another_category_is_rejected(registry, add, record):
    with ape.reverts(registry.RecordRegistryCategoryMismatch, supersedes=record, category=IMAGING):
        add(category=IMAGING, supersedes=record, label="v2")


def test_provider_cannot_amend_a_category_it_cannot_write(registry, add, provider):
    notes = add(category=MENTAL_HEALTH, label="notes")
    with ape.reverts(registry.RecordRegistryUnauthorizedAuthor, caller=provider):
        add(sender=provider, category=MENTAL_HEALTH, supersedes=notes, label="v2")
    assert registry.getRecord(notes).status == ACTIVE


def test_superseding_a_nonexistent_record_is_rejected(registry, add):
    with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=42):
        add(supersedes=42)


def test_only_the_latest_version_can_be_superseded(registry, add, record):
    add(supersedes=record, label="v2")
    with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=AMENDED):
        add(supersedes=record, label="v2 again")


@pytest.mark.parametrize(
    ("action", "status"), [("retractRecord", RETRACTED), ("eraseRecord", ERASED)]
)
def test_withdrawn_records_cannot_be_superseded(registry, add, record, patient, action, status):
    getattr(registry, action)(record, sender=patient)
    with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=status):
        add(supersedes=record, label="v2")


# ---------------------------------------------------------------------------- retract / erase


@pytest.mark.parametrize("actor", ["patient", "guardian"])
def test_patient_or_guardian_retracts(request, registry, record, patient, actor):
    sender = request.getfixturevalue(actor)
    receipt = registry.retractRecord(record, sender=sender)
    assert receipt.events == [
        registry.RecordRetracted(recordId=record, patient=patient, actor=sender)
    ]
    assert registry.getRecord(record).status == RETRACTED


@pytest.mark.parametrize("actor", ["patient", "guardian"])
def test_patient_or_guardian_erases(request, registry, record, patient, actor):
    sender = request.getfixturevalue(actor)
    receipt = registry.eraseRecord(record, sender=sender)
    assert receipt.events == [registry.RecordErased(recordId=record, patient=patient, actor=sender)]
    stored = registry.getRecord(record)
    assert stored.status == ERASED
    assert stored.cidDigest == h("cid r")  # nothing is deleted on chain
    assert registry.recordCount(patient) == 1


def test_others_cannot_retract_or_erase(registry, add, patient, provider, researcher, stranger):
    record_id = add(sender=provider)  # being the author is not enough either
    for sender in (provider, researcher, stranger):
        for action in ("retractRecord", "eraseRecord"):
            with ape.reverts(registry.RecordRegistryUnauthorized, caller=sender, patient=patient):
                getattr(registry, action)(record_id, sender=sender)
    assert registry.getRecord(record_id).status == ACTIVE


def test_patient_cannot_erase_another_patients_record(registry, add, patient, researcher):
    theirs = add(who=researcher, label="theirs")
    with ape.reverts(registry.RecordRegistryUnauthorized, caller=patient, patient=researcher):
        registry.eraseRecord(theirs, sender=patient)


def test_retract_then_erase_and_status_rules(registry, add, record, patient):
    v2 = add(supersedes=record, label="v2")
    registry.retractRecord(record, sender=patient)  # an amended version may be retracted
    with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=RETRACTED):
        registry.retractRecord(record, sender=patient)
    registry.eraseRecord(record, sender=patient)  # a retracted one may be erased
    with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=ERASED):
        registry.eraseRecord(record, sender=patient)
    with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=ERASED):
        registry.retractRecord(record, sender=patient)
    assert registry.getRecord(v2).status == ACTIVE


def test_retract_or_erase_of_an_unknown_record(registry, patient):
    for action in ("retractRecord", "eraseRecord"):
        with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=7):
            getattr(registry, action)(7, sender=patient)


# ---------------------------------------------------------------------------- shareKey


def test_patient_shares_with_a_permitted_grantee(registry, record, patient, researcher):
    receipt = registry.shareKey(record, researcher, WRAPPED, sender=patient)
    assert receipt.events == [
        registry.KeyShared(
            recordId=record,
            patient=patient,
            grantee=researcher,
            sharer=patient,
            wrappedKey=WRAPPED,
        )
    ]


def test_guardian_shares_with_a_permitted_grantee(registry, record, guardian, researcher):
    receipt = registry.shareKey(record, researcher, WRAPPED, sender=guardian)
    assert receipt.decode_logs(registry.KeyShared)[0].sharer == guardian


@pytest.mark.parametrize("actor", ["patient", "guardian"])
def test_key_release_to_the_patient(request, registry, record, patient, actor):
    receipt = registry.shareKey(record, patient, WRAPPED, sender=request.getfixturevalue(actor))
    log = receipt.decode_logs(registry.KeyShared)[0]
    assert (log.patient, log.grantee) == (patient, patient)


def test_author_releases_to_the_patient_and_to_itself(registry, add, patient, provider):
    record_id = add(sender=provider)
    for grantee in (patient, provider):
        receipt = registry.shareKey(record_id, grantee, WRAPPED, sender=provider)
        log = receipt.decode_logs(registry.KeyShared)[0]
        assert (log.grantee, log.sharer) == (grantee, provider)


def test_author_may_still_release_to_itself_after_a_revoke(
    registry, consents, add, patient, provider
):
    record_id = add(sender=provider)
    consents.revoke(provider, sender=patient)
    receipt = registry.shareKey(record_id, provider, WRAPPED, sender=provider)
    assert receipt.decode_logs(registry.KeyShared)[0].grantee == provider


def test_key_release_carries_the_patient_as_a_topic(registry, record, patient, researcher):
    receipt = registry.shareKey(record, researcher, WRAPPED, sender=patient)
    (log,) = receipt.logs
    topics = [bytes(t) for t in log["topics"]]
    assert topics[1:] == [
        record.to_bytes(32, "big"),
        bytes(12) + bytes.fromhex(str(patient.address)[2:]),
        bytes(12) + bytes.fromhex(str(researcher.address)[2:]),
    ]


def test_author_cannot_release_to_others(registry, add, provider, researcher):
    record_id = add(sender=provider)
    with ape.reverts(
        registry.RecordRegistryUnauthorizedShare,
        recordId=record_id,
        sharer=provider,
        grantee=researcher,
    ):
        registry.shareKey(record_id, researcher, WRAPPED, sender=provider)


def test_reader_who_is_not_the_author_cannot_release(registry, record, provider):
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, sharer=provider, grantee=provider):
        registry.shareKey(record, provider, WRAPPED, sender=provider)


def test_sharing_to_an_unpermitted_grantee_is_rejected(
    registry, consents, record, patient, stranger
):
    consents.setEncryptionKey(key_of(stranger), sender=stranger)
    with ape.reverts(
        registry.RecordRegistryUnauthorizedShare,
        recordId=record,
        sharer=patient,
        grantee=stranger,
    ):
        registry.shareKey(record, stranger, WRAPPED, sender=patient)


def test_a_read_consent_under_any_purpose_permits_the_release(
    registry, consents, record, patient, researcher, stranger
):
    # The researcher holds READ for laboratory under HRESCH only: the key goes out (the purpose
    # binds the grantee, off chain). A WRITE-only consent, or one for another category, does not.
    registry.shareKey(record, researcher, WRAPPED, sender=patient)
    consents.setEncryptionKey(key_of(stranger), sender=stranger)
    expiry = ape.chain.pending_timestamp + DAY
    consents.grant(stranger, 1 << LABORATORY, 1 << TREAT, WRITE, expiry, sender=patient)
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, grantee=stranger):
        registry.shareKey(record, stranger, WRAPPED, sender=patient)
    consents.grant(stranger, 1 << IMAGING, 1 << TREAT, READ | WRITE, expiry, sender=patient)
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, grantee=stranger):
        registry.shareKey(record, stranger, WRAPPED, sender=patient)


def test_sharing_a_category_the_grantee_may_not_read_is_rejected(
    registry, add, patient, researcher
):
    notes = add(category=MENTAL_HEALTH, label="notes")
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, recordId=notes, grantee=researcher):
        registry.shareKey(notes, researcher, WRAPPED, sender=patient)


def test_sharing_after_the_consent_expired_is_rejected(
    registry, consents, record, patient, researcher
):
    ape.chain.pending_timestamp = consents.consentOf(patient, researcher).expiry
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, grantee=researcher):
        registry.shareKey(record, researcher, WRAPPED, sender=patient)


def test_sharing_after_a_revoke_is_rejected(registry, consents, record, patient, researcher):
    consents.revoke(researcher, sender=patient)
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, grantee=researcher):
        registry.shareKey(record, researcher, WRAPPED, sender=patient)


def test_stranger_cannot_release(registry, record, stranger, researcher):
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, sharer=stranger, grantee=researcher):
        registry.shareKey(record, researcher, WRAPPED, sender=stranger)


def test_release_does_not_read_the_key_directory(registry, consents, record, patient, stranger):
    # The SDK refuses to wrap for an account without a published key; the contract cannot check
    # the wrapping, so it asks only the consent (decision noted in IRecordRegistry.KeyShared).
    assert consents.encryptionKeyOf(stranger) == bytes(32)
    expiry = ape.chain.pending_timestamp + DAY
    consents.grant(stranger, 1 << LABORATORY, 1 << TREAT, READ, expiry, sender=patient)
    receipt = registry.shareKey(record, stranger, WRAPPED, sender=patient)
    assert receipt.decode_logs(registry.KeyShared)[0].grantee == stranger


def test_wrapped_key_length_is_bounded(registry, record, patient):
    for length in (0, 513, 4096):
        with ape.reverts(registry.RecordRegistryInvalidWrappedKey, length=length):
            registry.shareKey(record, patient, b"\x01" * length, sender=patient)


def test_wrapped_key_of_the_maximum_length_is_accepted(registry, record, patient):
    receipt = registry.shareKey(record, patient, b"\x02" * 512, sender=patient)
    assert receipt.decode_logs(registry.KeyShared)[0].wrappedKey == b"\x02" * 512


@pytest.mark.parametrize(
    ("action", "status"), [("retractRecord", RETRACTED), ("eraseRecord", ERASED)]
)
def test_no_key_release_for_withdrawn_records(
    registry, record, patient, researcher, action, status
):
    getattr(registry, action)(record, sender=patient)
    for grantee in (patient, researcher):
        with ape.reverts(registry.RecordRegistryInvalidStatus, recordId=record, status=status):
            registry.shareKey(record, grantee, WRAPPED, sender=patient)


def test_amended_versions_stay_shareable(registry, add, record, patient, researcher):
    add(supersedes=record, label="v2")
    registry.shareKey(record, researcher, WRAPPED, sender=patient)


def test_sharing_an_unknown_record_is_rejected(registry, patient):
    with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=9):
        registry.shareKey(9, patient, WRAPPED, sender=patient)


# ---------------------------------------------------------------------------- shareKeys


def test_batch_releases_every_key_in_order(registry, add, record, patient, researcher):
    second = add(label="second")
    shares = [
        (record, researcher, WRAPPED),
        (second, researcher, WRAPPED + b"\x02"),
        (second, patient, WRAPPED + b"\x03"),
    ]
    receipt = registry.shareKeys(shares, sender=patient)
    logs = receipt.decode_logs(registry.KeyShared)
    assert [(log.recordId, log.grantee, log.wrappedKey) for log in logs] == [
        (record, researcher, WRAPPED),
        (second, researcher, WRAPPED + b"\x02"),
        (second, patient, WRAPPED + b"\x03"),
    ]


def test_batch_is_all_or_nothing_and_names_the_failing_index(
    registry, consents, record, patient, researcher, stranger
):
    consents.setEncryptionKey(key_of(stranger), sender=stranger)
    shares = [
        (record, researcher, WRAPPED),
        (record, patient, WRAPPED),
        (record, stranger, WRAPPED),
        (record, researcher, WRAPPED),
    ]
    reason = error_data(
        "RecordRegistryUnauthorizedShare(uint256,address,address)",
        ["uint256", "address", "address"],
        [record, str(patient.address), str(stranger.address)],
    )
    with ape.reverts(registry.RecordRegistryShareRejected, index=2, reason=reason):
        registry.shareKeys(shares, sender=patient)


def test_batch_reports_an_unknown_record_with_its_index(registry, record, patient):
    reason = error_data("RecordRegistryNonexistentRecord(uint256)", ["uint256"], [record + 1])
    with ape.reverts(registry.RecordRegistryShareRejected, index=1, reason=reason):
        registry.shareKeys(
            [(record, patient, WRAPPED), (record + 1, patient, WRAPPED)],
            sender=patient,
        )


def test_batch_size_is_bounded(registry, record, patient):
    for size in (0, 65):
        with ape.reverts(registry.RecordRegistryInvalidBatchSize, size=size):
            registry.shareKeys([(record, patient, WRAPPED)] * size, sender=patient)


# ---------------------------------------------------------------------------- signatures


def _release(registry, patient, grantee, wrapped=WRAPPED):
    """An EIP-712 KeyRelease: the pair's consent nonce as it is now."""
    return {
        "grantee": str(grantee.address),
        "wrappedKey": wrapped,
        "consentNonce": registry.nonceOf(patient, grantee),
    }


def _add_message(registry, patient, **overrides):
    message = {
        "patient": str(patient.address),
        "cidDigest": h("signed"),
        "cidCodec": RAW,
        "contentHash": h("signed"),
        "category": LABORATORY,
        "supersedes": 0,
        "releases": [_release(registry, patient, patient)],
        "nonce": registry.nonces(patient),
        "deadline": FAR,
    }
    message.update(overrides)
    return message


def _add_args(message):
    args = [message[name] for name, _ in ADD_RECORD_FIELDS if name != "nonce"]
    args[6] = [(r["grantee"], r["wrappedKey"]) for r in message["releases"]]
    return args


def test_signed_add_is_relayed_with_the_patient_as_author(registry, sign, patient, relayer):
    message = _add_message(registry, patient)
    signature = sign(patient, "AddRecord", message)
    receipt = registry.addRecordBySig(*_add_args(message), signature, sender=relayer)
    assert receipt.events == [
        registry.RecordAdded(
            recordId=rid(patient, 0),
            patient=patient,
            author=patient,
            category=LABORATORY,
            cidDigest=h("signed"),
            cidCodec=RAW,
            contentHash=h("signed"),
            supersedes=0,
        ),
        registry.KeyShared(
            recordId=rid(patient, 0),
            patient=patient,
            grantee=patient,
            sharer=patient,
            wrappedKey=WRAPPED,
        ),
    ]
    assert registry.getRecord(rid(patient, 0)).author == patient
    assert registry.nonces(patient) == 1


def test_signed_add_cannot_be_replayed(registry, sign, patient, relayer):
    message = _add_message(registry, patient)
    signature = sign(patient, "AddRecord", message)
    registry.addRecordBySig(*_add_args(message), signature, sender=relayer)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*_add_args(message), signature, sender=relayer)


def test_signed_add_by_another_signer_is_rejected(registry, sign, patient, guardian, relayer):
    message = _add_message(registry, patient)
    signature = sign(guardian, "AddRecord", message)  # even a guardian cannot sign for the patient
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*_add_args(message), signature, sender=relayer)


def test_signed_add_with_a_changed_field_is_rejected(registry, sign, patient, relayer):
    message = _add_message(registry, patient)
    signature = sign(patient, "AddRecord", message)
    tampered = {**message, "category": MENTAL_HEALTH}
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*_add_args(tampered), signature, sender=relayer)


def test_signed_add_after_its_deadline_is_rejected(registry, sign, patient, relayer):
    deadline = ape.chain.pending_timestamp - 1
    message = _add_message(registry, patient, deadline=deadline)
    signature = sign(patient, "AddRecord", message)
    with ape.reverts(registry.ConsentRegistryExpiredSignature, deadline=deadline):
        registry.addRecordBySig(*_add_args(message), signature, sender=relayer)


def test_signed_add_follows_the_record_rules(registry, sign, add, patient, researcher, relayer):
    theirs = add(who=researcher, label="theirs")
    message = _add_message(registry, patient, supersedes=theirs)
    signature = sign(patient, "AddRecord", message)
    with ape.reverts(registry.RecordRegistryPatientMismatch, supersedes=theirs, patient=patient):
        registry.addRecordBySig(*_add_args(message), signature, sender=relayer)


def _share_message(registry, patient, record, grantee, **overrides):
    message = {
        "recordId": record,
        "grantee": str(grantee.address),
        "wrappedKey": WRAPPED,
        "consentNonce": registry.nonceOf(patient, grantee),
        "nonce": registry.nonces(patient),
        "deadline": FAR,
    }
    message.update(overrides)
    return message


def _share_args(message):
    return [message[name] for name, _ in SHARE_KEY_FIELDS if name not in ("nonce", "consentNonce")]


def test_signed_key_release_is_relayed_with_the_patient_as_sharer(
    registry, sign, record, patient, researcher, relayer
):
    message = _share_message(registry, patient, record, researcher)
    signature = sign(patient, "ShareKey", message)
    receipt = registry.shareKeyBySig(*_share_args(message), signature, sender=relayer)
    log = receipt.decode_logs(registry.KeyShared)[0]
    assert (log.sharer, log.grantee, log.wrappedKey) == (patient, researcher, WRAPPED)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.shareKeyBySig(*_share_args(message), signature, sender=relayer)


def test_signed_key_release_checks_signer_key_and_consent(
    registry, sign, record, patient, researcher, stranger, relayer
):
    message = _share_message(registry, patient, record, researcher)
    forged = sign(stranger, "ShareKey", message)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.shareKeyBySig(*_share_args(message), forged, sender=relayer)
    swapped = {**message, "wrappedKey": WRAPPED + b"!"}
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.shareKeyBySig(
            *_share_args(swapped), sign(patient, "ShareKey", message), sender=relayer
        )
    unpermitted = _share_message(registry, patient, record, stranger)
    with ape.reverts(registry.RecordRegistryUnauthorizedShare, sharer=patient, grantee=stranger):
        registry.shareKeyBySig(
            *_share_args(unpermitted), sign(patient, "ShareKey", unpermitted), sender=relayer
        )


def test_signed_key_release_after_its_deadline_is_rejected(
    registry, sign, record, patient, researcher, relayer
):
    deadline = ape.chain.pending_timestamp - 1
    message = _share_message(registry, patient, record, researcher, deadline=deadline)
    with ape.reverts(registry.ConsentRegistryExpiredSignature, deadline=deadline):
        registry.shareKeyBySig(
            *_share_args(message), sign(patient, "ShareKey", message), sender=relayer
        )


def test_signed_key_release_of_an_unknown_record(registry, sign, patient, researcher, relayer):
    message = _share_message(registry, patient, 5, researcher)
    with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=5):
        registry.shareKeyBySig(
            *_share_args(message), sign(patient, "ShareKey", message), sender=relayer
        )


def test_nonces_are_shared_between_signed_adds_and_releases(
    registry, sign, record, patient, researcher, relayer
):
    share = _share_message(registry, patient, record, researcher)
    registry.shareKeyBySig(*_share_args(share), sign(patient, "ShareKey", share), sender=relayer)
    stale = _add_message(registry, patient, nonce=0)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(
            *_add_args(stale), sign(patient, "AddRecord", stale), sender=relayer
        )
    fresh = _add_message(registry, patient)
    assert fresh["nonce"] == 1
    registry.addRecordBySig(*_add_args(fresh), sign(patient, "AddRecord", fresh), sender=relayer)


# ---------------------------------------------------------------------------- views


def test_get_record_of_an_unknown_id(registry):
    for record_id in (0, 1, 2**64, 2**256 - 1):
        with ape.reverts(registry.RecordRegistryNonexistentRecord, recordId=record_id):
            registry.getRecord(record_id)


PAGES = [
    (0, 100, slice(0, 6)),
    (0, 6, slice(0, 6)),
    (2, 2, slice(2, 4)),
    (3, 3, slice(3, 6)),
    (4, 10, slice(4, 6)),  # limit past the end
    (5, 1, slice(5, 6)),
    (6, 1, slice(0, 0)),  # offset at the end
    (7, 5, slice(0, 0)),  # offset beyond the end
    (2**255, 2**255, slice(0, 0)),
    (0, 0, slice(0, 0)),  # limit 0
    (3, 0, slice(0, 0)),
    (0, 2**256 - 1, slice(0, 6)),
]


@pytest.fixture
def six(add, patient):
    """Six records of the patient: ids patient << 96 | 0..5."""
    return [add(label=f"page {i}") for i in range(6)]


def test_pagination_edges(registry, six, patient):
    assert registry.recordCount(patient) == 6
    everything = {r.id: r for r in registry.recordsOf(patient, 0, 6)}
    for record_id, stored in everything.items():
        assert stored == registry.getRecord(record_id)
    for offset, limit, expected in PAGES:
        page = registry.recordsOf(patient, offset, limit)
        assert [r.id for r in page] == six[expected], (offset, limit)
        assert all(r == everything[r.id] for r in page)


def test_pages_of_a_patient_without_records(registry, stranger):
    assert registry.recordCount(stranger) == 0
    assert list(registry.recordsOf(stranger, 0, 10)) == []


def test_pages_show_current_status_and_author(registry, add, six, patient, provider):
    registry.eraseRecord(six[1], sender=patient)
    by_provider = add(sender=provider, label="by provider")
    page = registry.recordsOf(patient, 1, 100)
    assert [r.status for r in page] == [ERASED, ACTIVE, ACTIVE, ACTIVE, ACTIVE, ACTIVE]
    assert page[-1].id == by_provider
    assert page[-1].author == provider


# ---------------------------------------------------------------------------- initial releases
# Issue 14, point 3: a record never exists without its patient's key.


def test_provider_record_carries_the_patient_and_own_releases(registry, patient, provider):
    receipt = registry.addRecord(
        patient, h("p"), RAW, h("p"), LABORATORY, 0,
        [(patient, WRAPPED), (provider, WRAPPED + b"p")], sender=provider,
    )  # fmt: skip
    record = rid(patient, 0)
    shared = receipt.decode_logs(registry.KeyShared)
    assert [(e.recordId, e.grantee, e.sharer) for e in shared] == [
        (record, patient, provider),
        (record, provider, provider),
    ]
    assert [e.wrappedKey for e in shared] == [WRAPPED, WRAPPED + b"p"]


def test_record_without_a_patient_release_is_refused(registry, patient, provider, researcher):
    for releases in ([], [(provider, WRAPPED)]):
        with ape.reverts(registry.RecordRegistryMissingPatientRelease, patient=patient):
            registry.addRecord(
                patient, h("n"), RAW, h("n"), LABORATORY, 0, releases, sender=provider
            )
    # The patient's own record too.
    with ape.reverts(registry.RecordRegistryMissingPatientRelease, patient=patient):
        registry.addRecord(
            patient, h("n"), RAW, h("n"), LABORATORY, 0, [(researcher, WRAPPED)], sender=patient
        )
    assert registry.recordCount(patient) == 0


def test_initial_releases_follow_the_share_rules(registry, patient, provider, researcher, stranger):
    record = rid(patient, 0)
    # A provider (author) may not release to a third party, even one with READ.
    reason = error_data(
        "RecordRegistryUnauthorizedShare(uint256,address,address)",
        ["uint256", "address", "address"],
        [record, str(provider.address), str(researcher.address)],
    )
    with ape.reverts(registry.RecordRegistryShareRejected, index=1, reason=reason):
        registry.addRecord(
            patient, h("r"), RAW, h("r"), LABORATORY, 0,
            [(patient, WRAPPED), (researcher, WRAPPED)], sender=provider,
        )  # fmt: skip
    # The patient may release to a grantee with READ, not to a stranger.
    registry.addRecord(
        patient, h("r"), RAW, h("r"), LABORATORY, 0,
        [(patient, WRAPPED), (researcher, WRAPPED)], sender=patient,
    )  # fmt: skip
    reason = error_data(
        "RecordRegistryUnauthorizedShare(uint256,address,address)",
        ["uint256", "address", "address"],
        [rid(patient, 1), str(patient.address), str(stranger.address)],
    )
    with ape.reverts(registry.RecordRegistryShareRejected, index=0, reason=reason):
        registry.addRecord(
            patient, h("s"), RAW, h("s"), LABORATORY, 0,
            [(stranger, WRAPPED), (patient, WRAPPED)], sender=patient,
        )  # fmt: skip
    empty = error_data("RecordRegistryInvalidWrappedKey(uint256)", ["uint256"], [0])
    with ape.reverts(registry.RecordRegistryShareRejected, index=0, reason=empty):
        registry.addRecord(
            patient, h("s"), RAW, h("s"), LABORATORY, 0, [(patient, b"")], sender=patient
        )
    with ape.reverts(registry.RecordRegistryInvalidBatchSize, size=65):
        registry.addRecord(
            patient, h("s"), RAW, h("s"), LABORATORY, 0, [(patient, WRAPPED)] * 65, sender=patient
        )


def test_signed_add_binds_its_releases(registry, sign, patient, researcher, relayer):
    message = _add_message(
        registry,
        patient,
        releases=[_release(registry, patient, patient), _release(registry, patient, researcher)],
    )
    signature = sign(patient, "AddRecord", message)
    swapped = _add_args(message)
    swapped[6] = [swapped[6][0]]  # a relayer drops the researcher's release
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*swapped, signature, sender=relayer)
    receipt = registry.addRecordBySig(*_add_args(message), signature, sender=relayer)
    grantees = [e.grantee for e in receipt.decode_logs(registry.KeyShared)]
    assert grantees == [patient, researcher]


def test_signed_add_release_dies_with_a_revoke(registry, sign, patient, researcher, relayer):
    # Issue 15, finding 3 for the releases inside an AddRecord: revoked and granted again, the
    # pair's consent nonce moved, so the old signature no longer releases to the researcher.
    message = _add_message(
        registry,
        patient,
        releases=[_release(registry, patient, patient), _release(registry, patient, researcher)],
    )
    signature = sign(patient, "AddRecord", message)
    registry.revoke(researcher, sender=patient)
    registry.grant(researcher, 1 << LABORATORY, 1 << HRESCH, READ, FAR >> 30, sender=patient)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*_add_args(message), signature, sender=relayer)


def test_signed_key_release_dies_with_a_revoke(
    registry, sign, record, patient, researcher, relayer
):
    # Issue 15, finding 3: signed, revoked, granted again for a new episode of care: the old
    # ShareKey signature must not release the old record's key. On the code before the fix the
    # relay succeeded (the signature was bound to the record nonce alone).
    message = _share_message(registry, patient, record, researcher)
    signature = sign(patient, "ShareKey", message)
    registry.revoke(researcher, sender=patient)
    registry.grant(researcher, 1 << LABORATORY, 1 << HRESCH, READ, FAR >> 30, sender=patient)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.shareKeyBySig(*_share_args(message), signature, sender=relayer)
    assert registry.nonces(patient) == 0


def test_patient_cancels_outstanding_record_signatures(
    registry, sign, record, patient, researcher, relayer, stranger
):
    add = _add_message(registry, patient)
    share = _share_message(registry, patient, record, researcher)
    add_sig, share_sig = sign(patient, "AddRecord", add), sign(patient, "ShareKey", share)
    receipt = registry.cancelRecordSignatures(sender=patient)
    assert receipt.events == [registry.RecordSignaturesCancelled(patient=patient, nonce=1)]
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.addRecordBySig(*_add_args(add), add_sig, sender=relayer)
    with ape.reverts(registry.ConsentRegistryInvalidSignature, patient=patient):
        registry.shareKeyBySig(*_share_args(share), share_sig, sender=relayer)
    # Someone else's cancel moves only their own nonce.
    registry.cancelRecordSignatures(sender=stranger)
    assert (registry.nonces(patient), registry.nonces(stranger)) == (1, 1)
    fresh = _add_message(registry, patient)
    registry.addRecordBySig(*_add_args(fresh), sign(patient, "AddRecord", fresh), sender=relayer)
