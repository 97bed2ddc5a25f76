"""ConsentRegistry: grants, revokes, expiry, guardians, signed consents and encryption keys.

Every rule of issue 3 is checked both ways (it holds, and breaking it reverts with the custom error
and its arguments). Runs unchanged on the embedded chain and on Anvil.
"""

import ape
import pytest
from eth_abi import encode
from eth_keys import keys as eth_keys
from eth_utils import keccak

from medrecord_sdk.vocabulary import Action, Category, Purpose, category_mask, purpose_mask

pytestmark = pytest.mark.usefixtures("quiet_revert_traces")

ZERO = "0x0000000000000000000000000000000000000000"
NO_EXPIRY = 2**40 - 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
READ, WRITE = int(Action.READ), int(Action.WRITE)
LABS = category_mask(Category.LABORATORY, Category.VITAL_SIGNS)
TREAT = purpose_mask(Purpose.TREAT, Purpose.ETREAT)
DAY = 86_400


def now(chain) -> int:
    """The timestamp the next transaction will carry (pinned, so revert arguments are exact)."""
    timestamp = chain.pending_timestamp
    chain.pending_timestamp = timestamp
    return timestamp


def as_tuple(consent_struct) -> tuple:
    c = consent_struct
    return (c.categories, c.purposes, c.actions, c.expiry, c.nonce)


@pytest.fixture
def granted(consent, patient, provider, chain):
    """`patient` has granted `provider` READ on labs and vitals for treatment, for a day."""
    expiry = now(chain) + DAY
    consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)
    return expiry


@pytest.fixture
def appointed(consent, patient, guardian):
    consent.appointGuardian(guardian, sender=patient)
    return guardian


# ------------------------------------------------------------------ interface and storage


def test_no_admin_functions(consent):
    """The only state-changing entry points are the patient's own; there is nothing to own."""
    mutating = {
        abi.name for abi in consent.contract_type.mutable_methods if abi.stateMutability != "view"
    }
    assert mutating == {
        "grant",
        "grantFor",
        "grantBySig",
        "revoke",
        "revokeFor",
        "revokeBySig",
        "appointGuardian",
        "removeGuardian",
        "setEncryptionKey",
        "setEncryptionKeyWithFormats",
    }


def test_events_index_patient_and_grantee(consent):
    """Every event names its accounts in topics, so a patient's or grantee's history is a filter."""
    indexed = {
        abi.name: [arg.name for arg in abi.inputs if arg.indexed]
        for abi in consent.contract_type.events
    }
    assert indexed == {
        "ConsentGranted": ["patient", "grantee", "actor"],
        "ConsentRevoked": ["patient", "grantee", "actor"],
        "GuardianAppointed": ["patient", "guardian"],
        "GuardianRemoved": ["patient", "guardian"],
        "EncryptionKeySet": ["account"],
        "EncryptionKeyPublished": ["account"],
        # ERC-5267's event, from OpenZeppelin's EIP712; never emitted (the domain is immutable).
        "EIP712DomainChanged": [],
    }


def test_eip5267_domain_describes_the_signing_domain(consent, chain_id):
    """Wallets and the SDK can read the domain instead of hard-coding it."""
    fields, name, version, domain_chain_id, verifying_contract, salt, extensions = (
        consent.eip712Domain()
    )
    assert fields == b"\x0f"  # name, version, chainId, verifyingContract
    assert (name, version) == ("MedRecord ConsentRegistry", "1")
    assert domain_chain_id == chain_id
    assert verifying_contract == consent.address
    assert salt == bytes(32)
    assert extensions == []


def test_typehashes_and_domain_match_eip712(consent, chain_id):
    assert consent.GRANT_TYPEHASH() == keccak(
        text="Grant(address patient,address grantee,uint64 categories,uint32 purposes,"
        "uint8 actions,uint40 expiry,uint64 nonce,uint256 deadline)"
    )
    assert consent.REVOKE_TYPEHASH() == keccak(
        text="Revoke(address patient,address grantee,uint64 nonce,uint256 deadline)"
    )
    domain_typehash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    assert consent.DOMAIN_SEPARATOR() == keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                domain_typehash,
                keccak(text="MedRecord ConsentRegistry"),
                keccak(text="1"),
                chain_id,
                consent.address,
            ],
        )
    )


def test_consent_is_one_packed_slot(consent, patient, provider, granted, chain):
    """categories | purposes << 64 | actions << 96 | expiry << 104 | nonce << 144, one word."""
    # EIP712's two fallback strings take slots 0 and 1; `_consents` is slot 2.
    outer = keccak(bytes(12) + bytes.fromhex(patient.address[2:]) + (2).to_bytes(32, "big"))
    slot = int.from_bytes(keccak(bytes(12) + bytes.fromhex(provider.address[2:]) + outer), "big")
    word = int.from_bytes(chain.provider.get_storage(consent.address, slot), "big")
    assert word == LABS | TREAT << 64 | READ << 96 | granted << 104 | 1 << 144
    assert int.from_bytes(chain.provider.get_storage(consent.address, slot + 1), "big") == 0


# ------------------------------------------------------------------ grant


def test_grant_stores_and_emits(consent, patient, provider, chain):
    expiry = now(chain) + DAY
    receipt = consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, patient, LABS, TREAT, READ, expiry, 1)
    ]
    assert as_tuple(consent.consentOf(patient, provider)) == (LABS, TREAT, READ, expiry, 1)
    assert consent.nonceOf(patient, provider) == 1


def test_grant_permits_exactly_what_it_says(consent, patient, provider, researcher, granted):
    lab, treat = int(Category.LABORATORY), int(Purpose.TREAT)
    assert consent.isPermitted(patient, provider, lab, treat, READ)
    assert consent.isPermitted(patient, provider, int(Category.VITAL_SIGNS), 1, READ)
    assert not consent.isPermitted(patient, provider, lab, treat, WRITE)
    assert not consent.isPermitted(patient, provider, lab, treat, READ | WRITE)
    assert not consent.isPermitted(patient, provider, int(Category.GENOMICS), treat, READ)
    assert not consent.isPermitted(patient, provider, lab, int(Purpose.HRESCH), READ)
    assert not consent.isPermitted(patient, researcher, lab, treat, READ)
    # The consent is directional: the grantee's own data is not opened to the patient.
    assert not consent.isPermitted(provider, patient, lab, treat, READ)


def test_is_permitted_never_reverts_on_out_of_range_input(consent, patient, provider, granted):
    assert not consent.isPermitted(patient, provider, 64, 0, READ)
    assert not consent.isPermitted(patient, provider, 255, 0, READ)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 32, READ)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, 0)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, 4)


def test_is_permitted_all_needs_every_bit(consent, patient, provider, granted):
    assert consent.isPermittedAll(patient, provider, LABS, TREAT, READ)
    assert consent.isPermittedAll(patient, provider, Category.LABORATORY.bit, 1, READ)
    assert not consent.isPermittedAll(patient, provider, LABS | 1, TREAT, READ)
    assert not consent.isPermittedAll(patient, provider, LABS, TREAT | 1 << 4, READ)
    assert not consent.isPermittedAll(patient, provider, LABS, TREAT, READ | WRITE)
    assert not consent.isPermittedAll(patient, provider, 0, TREAT, READ)
    assert not consent.isPermittedAll(patient, provider, LABS, 0, READ)
    assert not consent.isPermittedAll(patient, provider, LABS, TREAT, 0)


def test_is_permitted_any_purpose_asks_categories_and_actions_under_any_purpose(
    consent, patient, provider, granted
):
    # The grant is LABS for TREAT with READ: any purpose will do, every category and action
    # asked must be held, and an empty question is refused.
    assert consent.isPermittedAnyPurpose(patient, provider, LABS, READ)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, WRITE)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, READ | WRITE)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS | 1, READ)
    assert not consent.isPermittedAnyPurpose(patient, provider, 0, READ)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, 0)
    assert not consent.isPermittedAnyPurpose(provider, patient, LABS, READ)  # directional
    assert consent.isPermittedAnyPurpose(patient, patient, 2**64 - 1, READ | WRITE)
    assert not consent.isPermittedAnyPurpose(patient, patient, 0, READ)


def test_is_permitted_any_purpose_ends_with_the_expiry_and_with_a_revoke(
    consent, patient, provider, granted, chain
):
    chain.mine(timestamp=granted - 1)
    assert consent.isPermittedAnyPurpose(patient, provider, LABS, READ)
    chain.mine(timestamp=granted)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, READ)
    consent.revoke(provider, sender=patient)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, READ)


def test_grant_replaces_rather_than_adds(consent, patient, provider, granted, chain):
    expiry = now(chain) + 2 * DAY
    genomics = Category.GENOMICS.bit
    receipt = consent.grant(provider, genomics, TREAT, READ | WRITE, expiry, sender=patient)
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, patient, genomics, TREAT, 3, expiry, 2)
    ]
    assert as_tuple(consent.consentOf(patient, provider)) == (genomics, TREAT, 3, expiry, 2)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)
    assert consent.isPermitted(patient, provider, int(Category.GENOMICS), 0, WRITE)


def test_patient_is_always_permitted_on_own_data(consent, patient):
    everything = 2**64 - 1
    assert consent.isPermitted(patient, patient, 63, 31, READ | WRITE)
    assert consent.isPermittedAll(patient, patient, everything, 2**32 - 1, READ | WRITE)
    # ...but an empty question is never answered yes.
    assert not consent.isPermittedAll(patient, patient, 0, 1, READ)
    assert not consent.isPermitted(patient, patient, 0, 0, 0)


# ------------------------------------------------------------------ permittedAllBitmap


def bits_of(bitmap, count: int) -> list[bool]:
    """The answer per patient from permittedAllBitmap's words; nothing set past the last one."""
    assert len(bitmap) == (count + 255) // 256
    if bitmap:
        assert bitmap[-1] >> ((count - 1) % 256 + 1) == 0, "a bit set past the last patient"
    return [bitmap[i // 256] >> (i % 256) & 1 == 1 for i in range(count)]


def ask_batch(consent, patients, grantee, categories, purposes, actions) -> list[bool]:
    """The batch answer, checked patient by patient against isPermittedAll."""
    answer = bits_of(
        consent.permittedAllBitmap(patients, grantee, categories, purposes, actions),
        len(patients),
    )
    single = [consent.isPermittedAll(p, grantee, categories, purposes, actions) for p in patients]
    assert answer == single
    return answer


def test_permitted_all_bitmap_one_bit_per_patient_in_order(
    consent, patient, provider, researcher, stranger, granted, chain
):
    """A consenting patient, one without consent, the grantee itself, a duplicate, zero."""
    consent.grant(provider, LABS, TREAT, READ, granted, sender=stranger)
    patients = [patient, researcher, provider, patient, ZERO, stranger]
    expected = [True, False, True, True, False, True]
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ) == expected
    bitmap = consent.permittedAllBitmap(patients, provider, LABS, TREAT, READ)
    assert list(bitmap) == [0b101101]


def test_permitted_all_bitmap_needs_every_bit(consent, patient, provider, researcher, granted):
    """Partial cover of categories, purposes or actions is a no; a subset of the grant is a yes."""
    patients = [patient, researcher]
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ) == [True, False]
    lab = Category.LABORATORY.bit
    assert ask_batch(consent, patients, provider, lab, 1, READ) == [True, False]
    assert ask_batch(consent, patients, provider, LABS | 1, TREAT, READ) == [False, False]
    assert ask_batch(consent, patients, provider, LABS, TREAT | 1 << 4, READ) == [False, False]
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ | WRITE) == [False, False]
    assert ask_batch(consent, patients, provider, LABS, TREAT, WRITE) == [False, False]


@pytest.mark.parametrize("empty", ["categories", "purposes", "actions"])
def test_permitted_all_bitmap_empty_mask_permits_nobody(consent, patient, provider, granted, empty):
    """Not the consenting patient, and not the grantee on its own data either."""
    masks = {"categories": LABS, "purposes": TREAT, "actions": READ, empty: 0}
    patients = [patient, provider, patient]
    bitmap = consent.permittedAllBitmap(patients, provider, *masks.values())
    assert list(bitmap) == [0]
    assert ask_batch(consent, patients, provider, *masks.values()) == [False] * 3


def test_permitted_all_bitmap_grantee_is_permitted_on_own_data(consent, patient):
    everything = 2**64 - 1
    answer = ask_batch(consent, [patient], patient, everything, 2**32 - 1, READ | WRITE)
    assert answer == [True]


def test_permitted_all_bitmap_of_no_patients_is_empty(consent, provider):
    assert list(consent.permittedAllBitmap([], provider, LABS, TREAT, READ)) == []
    assert list(consent.permittedAllBitmap([], provider, 0, 0, 0)) == []


def test_permitted_all_bitmap_holds_until_the_second_before_expiry(
    consent, patient, provider, researcher, granted, chain
):
    consent.grant(provider, LABS, TREAT, READ, granted + 1, sender=researcher)
    patients = [patient, researcher]
    chain.mine(timestamp=granted - 1)
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ) == [True, True]
    chain.mine(timestamp=granted)
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ) == [False, True]
    chain.mine(timestamp=granted + 1)
    assert ask_batch(consent, patients, provider, LABS, TREAT, READ) == [False, False]


def test_permitted_all_bitmap_after_revoke(consent, patient, provider, granted):
    consent.revoke(provider, sender=patient)
    assert ask_batch(consent, [patient], provider, LABS, TREAT, READ) == [False]
    # The nonce left in the slot is not read as rights.
    assert ask_batch(consent, [patient], provider, 1, 1, 1) == [False]


def test_permitted_all_bitmap_spans_several_words(consent, patient, provider, researcher, granted):
    """300 patients: two words; bit 256 + k answers patients[256 + k]."""
    patients = [researcher] * 300
    for index in (0, 7, 255, 256, 299):
        patients[index] = patient
    answer = bits_of(
        consent.permittedAllBitmap(patients, provider, LABS, TREAT, READ), len(patients)
    )
    assert [i for i, ok in enumerate(answer) if ok] == [0, 7, 255, 256, 299]
    # The same with 256 exactly: one full word.
    answer = bits_of(consent.permittedAllBitmap(patients[:256], provider, LABS, TREAT, READ), 256)
    assert [i for i, ok in enumerate(answer) if ok] == [0, 7, 255]


def test_permitted_all_bitmap_refuses_a_word_that_is_not_an_address(consent, patient, provider):
    """Like the ABI decoder: upper bits set in a patient word revert the call."""
    args = ([patient.address], provider.address, LABS, TREAT, READ)
    data = bytearray(consent.permittedAllBitmap.encode_input(*args))
    clean = bytes(data)
    assert ape.chain.provider.web3.eth.call({"to": consent.address, "data": clean.hex()})
    # The one patient word is the last of the calldata; dirty its top byte.
    data[-32] = 0x01
    with pytest.raises(Exception):  # noqa: B017, PT011 (a bare revert, no error data)
        ape.chain.provider.web3.eth.call({"to": consent.address, "data": bytes(data).hex()})


@pytest.mark.parametrize("grantee_is", ["zero", "self"])
def test_grant_to_invalid_grantee_reverts(consent, patient, grantee_is, chain):
    grantee = ZERO if grantee_is == "zero" else patient.address
    with ape.reverts(consent.ConsentRegistryInvalidGrantee, grantee=grantee):
        consent.grant(grantee, LABS, TREAT, READ, now(chain) + DAY, sender=patient)


@pytest.mark.parametrize("empty", ["categories", "purposes", "actions"])
def test_empty_grant_reverts(consent, patient, provider, empty, chain):
    fields = {"categories": LABS, "purposes": TREAT, "actions": READ}
    fields[empty] = 0
    with ape.reverts(consent.ConsentRegistryEmptyGrant):
        consent.grant(provider, *fields.values(), now(chain) + DAY, sender=patient)
    assert consent.nonceOf(patient, provider) == 0


@pytest.mark.parametrize("actions", [4, READ | 4, 0x80, 0xFF])
def test_unknown_action_bits_revert(consent, patient, provider, actions, chain):
    with ape.reverts(consent.ConsentRegistryInvalidActions, actions=actions):
        consent.grant(provider, LABS, TREAT, actions, now(chain) + DAY, sender=patient)


@pytest.mark.parametrize("offset", [0, -1, -DAY])
def test_expiry_not_in_future_reverts(consent, patient, provider, offset, chain):
    timestamp = now(chain)
    expiry = timestamp + offset
    with ape.reverts(consent.ConsentRegistryInvalidExpiry, expiry=expiry, timestamp=timestamp):
        consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)


def test_expiry_in_one_second_is_accepted(consent, patient, provider, chain):
    expiry = now(chain) + 1
    consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)
    assert consent.consentOf(patient, provider).expiry == expiry


# ------------------------------------------------------------------ expiry


def test_consent_holds_until_the_second_before_expiry(consent, patient, provider, granted, chain):
    lab = int(Category.LABORATORY)
    chain.mine(timestamp=granted - 1)
    assert chain.blocks.head.timestamp == granted - 1
    assert consent.isPermitted(patient, provider, lab, 0, READ)
    assert consent.isPermittedAll(patient, provider, LABS, TREAT, READ)
    chain.mine(timestamp=granted)
    assert chain.blocks.head.timestamp == granted
    assert not consent.isPermitted(patient, provider, lab, 0, READ)
    assert not consent.isPermittedAll(patient, provider, LABS, TREAT, READ)
    # The stored state is unchanged; only its meaning lapsed. The patient still sees their own data.
    assert as_tuple(consent.consentOf(patient, provider)) == (LABS, TREAT, READ, granted, 1)
    assert consent.isPermitted(patient, patient, lab, 0, READ)


def test_no_expiry_value_outlives_the_clock(consent, patient, provider, chain):
    consent.grant(provider, LABS, TREAT, READ, NO_EXPIRY, sender=patient)
    chain.mine(timestamp=now(chain) + 100 * 365 * DAY)
    assert consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_expired_consent_can_be_renewed_and_revoked(consent, patient, provider, granted, chain):
    chain.mine(timestamp=granted + 10)
    expiry = now(chain) + DAY
    consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)
    assert consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)
    chain.mine(timestamp=expiry)
    receipt = consent.revoke(provider, sender=patient)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 3)]


# ------------------------------------------------------------------ revoke


def test_revoke_clears_rights_and_keeps_nonce_going(consent, patient, provider, granted, chain):
    receipt = consent.revoke(provider, sender=patient)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 2)]
    assert as_tuple(consent.consentOf(patient, provider)) == (0, 0, 0, 0, 2)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)
    # A new grant continues from the nonce, never from zero.
    expiry = now(chain) + DAY
    receipt = consent.grant(provider, LABS, TREAT, READ, expiry, sender=patient)
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, patient, LABS, TREAT, READ, expiry, 3)
    ]


def test_revoke_without_consent_moves_the_nonce(consent, patient, provider):
    # Issue 15, finding 2: a pair that holds nothing is revoked all the same (before the fix:
    # ConsentRegistryNoConsent), so its nonce moves and pending signatures for it die.
    receipt = consent.revoke(provider, sender=patient)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 1)]
    assert as_tuple(consent.consentOf(patient, provider)) == (0, 0, 0, 0, 1)


def test_revoke_twice_moves_the_nonce_twice(consent, patient, provider, granted):
    consent.revoke(provider, sender=patient)
    receipt = consent.revoke(provider, sender=patient)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 3)]
    assert consent.nonceOf(patient, provider) == 3


@pytest.mark.parametrize("grantee_is", ["zero", "self"])
def test_revoke_of_an_invalid_grantee_reverts(consent, patient, grantee_is):
    grantee = ZERO if grantee_is == "zero" else patient.address
    with ape.reverts(consent.ConsentRegistryInvalidGrantee, grantee=grantee):
        consent.revoke(grantee, sender=patient)


def test_pending_signed_grant_is_cancelled_by_a_revoke(
    consent, consent_signer, grant_args, patient, provider, relayer
):
    # Issue 15, finding 2: the patient signed a grant, changed their mind, and revokes the empty
    # pair before any relayer lands the signature. Before the fix the revoke reverted and the
    # relayer could still land the grant until its deadline.
    signature = consent_signer.grant(consent, *grant_args)
    consent.revoke(provider, sender=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)
    assert not consent.isPermittedAnyPurpose(patient, provider, LABS, READ)


def test_revoke_is_per_pair(consent, patient, provider, researcher, granted):
    consent.grant(researcher, LABS, TREAT, READ, granted, sender=patient)
    consent.revoke(provider, sender=patient)
    assert consent.isPermitted(patient, researcher, int(Category.LABORATORY), 0, READ)
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_grantee_cannot_revoke_patient_consent(consent, patient, provider, granted):
    """`revoke` acts on the caller's own consents: the grantee revoking touches only its own
    (empty) pair toward the patient, never the patient's consent to it."""
    receipt = consent.revoke(patient, sender=provider)
    assert receipt.events == [consent.ConsentRevoked(provider, patient, provider, 1)]
    assert consent.nonceOf(patient, provider) == 1
    assert consent.isPermittedAnyPurpose(patient, provider, LABS, READ)


# ------------------------------------------------------------------ guardians


def test_appoint_and_remove_guardian(consent, patient, guardian):
    assert not consent.isGuardian(patient, guardian)
    assert consent.canActFor(patient, patient)
    assert not consent.canActFor(patient, guardian)
    receipt = consent.appointGuardian(guardian, sender=patient)
    assert receipt.events == [consent.GuardianAppointed(patient, guardian)]
    assert consent.isGuardian(patient, guardian)
    assert consent.canActFor(patient, guardian)
    assert not consent.isGuardian(guardian, patient)
    receipt = consent.removeGuardian(guardian, sender=patient)
    assert receipt.events == [consent.GuardianRemoved(patient, guardian)]
    assert not consent.isGuardian(patient, guardian)
    assert not consent.canActFor(patient, guardian)


def test_guardian_grants_and_revokes_for_patient(consent, patient, provider, appointed, chain):
    expiry = now(chain) + DAY
    receipt = consent.grantFor(patient, provider, LABS, TREAT, READ, expiry, sender=appointed)
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, appointed, LABS, TREAT, READ, expiry, 1)
    ]
    assert consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)
    receipt = consent.revokeFor(patient, provider, sender=appointed)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, appointed, 2)]
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_patient_may_use_the_for_forms(consent, patient, provider, chain):
    expiry = now(chain) + DAY
    receipt = consent.grantFor(patient, provider, LABS, TREAT, READ, expiry, sender=patient)
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, patient, LABS, TREAT, READ, expiry, 1)
    ]
    receipt = consent.revokeFor(patient, provider, sender=patient)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 2)]


def test_stranger_cannot_act_for_patient(consent, patient, provider, stranger, granted, chain):
    with ape.reverts(consent.ConsentRegistryUnauthorized, caller=stranger, patient=patient):
        consent.grantFor(patient, stranger, LABS, TREAT, READ, now(chain) + DAY, sender=stranger)
    with ape.reverts(consent.ConsentRegistryUnauthorized, caller=stranger, patient=patient):
        consent.revokeFor(patient, provider, sender=stranger)
    # The grantee itself has no power over the consent either.
    with ape.reverts(consent.ConsentRegistryUnauthorized, caller=provider, patient=patient):
        consent.revokeFor(patient, provider, sender=provider)
    assert consent.nonceOf(patient, provider) == 1


def test_removed_guardian_loses_power(consent, patient, provider, appointed, granted):
    consent.removeGuardian(appointed, sender=patient)
    with ape.reverts(consent.ConsentRegistryUnauthorized, caller=appointed, patient=patient):
        consent.revokeFor(patient, provider, sender=appointed)
    assert consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_guardian_of_one_patient_is_not_guardian_of_another(
    consent, patient, researcher, provider, appointed, chain
):
    with ape.reverts(consent.ConsentRegistryUnauthorized, caller=appointed, patient=researcher):
        expiry = now(chain) + DAY
        consent.grantFor(researcher, provider, LABS, TREAT, READ, expiry, sender=appointed)


def test_guardian_cannot_appoint_or_remove_guardians(
    consent, patient, stranger, appointed, accounts
):
    """Guardianship is the patient's alone to give or take: a guardian's calls act on itself."""
    other = accounts[7]
    consent.appointGuardian(other, sender=patient)
    consent.appointGuardian(stranger, sender=appointed)
    assert consent.isGuardian(appointed, stranger)
    assert not consent.isGuardian(patient, stranger)
    with ape.reverts(consent.ConsentRegistryGuardianNotFound, patient=appointed, guardian=other):
        consent.removeGuardian(other, sender=appointed)
    assert consent.isGuardian(patient, other)


def test_guardian_rules_are_checked_in_grant_for(consent, patient, appointed, chain):
    """A guardian goes through the same validation as the patient."""
    with ape.reverts(consent.ConsentRegistryInvalidGrantee, grantee=patient):
        consent.grantFor(patient, patient, LABS, TREAT, READ, now(chain) + DAY, sender=appointed)
    with ape.reverts(consent.ConsentRegistryInvalidGrantee, grantee=patient):
        consent.revokeFor(patient, patient, sender=appointed)


@pytest.mark.parametrize("guardian_is", ["zero", "self"])
def test_invalid_guardian_reverts(consent, patient, guardian_is):
    account = ZERO if guardian_is == "zero" else patient.address
    with ape.reverts(consent.ConsentRegistryInvalidGuardian, guardian=account):
        consent.appointGuardian(account, sender=patient)


def test_appointing_twice_reverts(consent, patient, appointed):
    with ape.reverts(consent.ConsentRegistryGuardianExists, patient=patient, guardian=appointed):
        consent.appointGuardian(appointed, sender=patient)


def test_removing_a_non_guardian_reverts(consent, patient, guardian):
    with ape.reverts(consent.ConsentRegistryGuardianNotFound, patient=patient, guardian=guardian):
        consent.removeGuardian(guardian, sender=patient)


# ------------------------------------------------------------------ encryption keys


def test_set_encryption_key(consent, patient, provider):
    key, newer = b"\x11" * 32, b"\x22" * 32
    assert consent.encryptionKeyOf(patient) == bytes(32)
    receipt = consent.setEncryptionKey(key, sender=patient)
    assert receipt.events == [consent.EncryptionKeySet(patient, key)]
    assert consent.encryptionKeyOf(patient) == key
    assert consent.encryptionKeyOf(provider) == bytes(32)
    receipt = consent.setEncryptionKey(newer, sender=patient)
    assert receipt.events == [consent.EncryptionKeySet(patient, newer)]
    assert consent.encryptionKeyOf(patient) == newer


def test_encryption_key_formats(consent, patient, provider, researcher):
    # Issue 17, point 5: the key says which release formats its wallet opens.
    hpke, metamask, both = 1, 2, 3
    assert consent.encryptionKeyFormatsOf(patient) == 0  # no key published
    consent.setEncryptionKey(b"\x11" * 32, sender=patient)
    assert consent.encryptionKeyFormatsOf(patient) == hpke  # the one-argument call reads as HPKE
    receipt = consent.setEncryptionKeyWithFormats(b"\x22" * 32, metamask, sender=provider)
    assert receipt.events == [consent.EncryptionKeyPublished(provider, b"\x22" * 32, metamask)]
    assert consent.encryptionKeyOf(provider) == b"\x22" * 32
    assert consent.encryptionKeyFormatsOf(provider) == metamask
    # A new key by the one-argument call is an HPKE key again; the formats belong to a key.
    consent.setEncryptionKey(b"\x33" * 32, sender=provider)
    assert consent.encryptionKeyFormatsOf(provider) == hpke
    consent.setEncryptionKeyWithFormats(b"\x44" * 32, both, sender=researcher)
    assert consent.encryptionKeyFormatsOf(researcher) == both
    for formats in (0, 4, 255):
        with ape.reverts(consent.ConsentRegistryInvalidKeyFormats, formats=formats):
            consent.setEncryptionKeyWithFormats(b"\x55" * 32, formats, sender=researcher)
    with ape.reverts(consent.ConsentRegistryZeroEncryptionKey):
        consent.setEncryptionKeyWithFormats(bytes(32), metamask, sender=researcher)
    assert consent.encryptionKeyFormatsOf(researcher) == both


def test_zero_encryption_key_reverts(consent, patient):
    consent.setEncryptionKey(b"\x11" * 32, sender=patient)
    with ape.reverts(consent.ConsentRegistryZeroEncryptionKey):
        consent.setEncryptionKey(bytes(32), sender=patient)
    assert consent.encryptionKeyOf(patient) == b"\x11" * 32


# ------------------------------------------------------------------ signed consents


@pytest.fixture
def grant_args(patient, provider, chain):
    """A grant of `patient` to `provider`, as (patient, grantee, categories, purposes, actions,
    expiry, deadline)."""
    timestamp = now(chain)
    return [patient, provider, LABS, TREAT, READ | WRITE, timestamp + DAY, timestamp + 3600]


def test_grant_by_sig(consent, consent_signer, grant_args, patient, provider, relayer):
    signature = consent_signer.grant(consent, *grant_args)
    receipt = consent.grantBySig(*grant_args, signature, sender=relayer)
    _, _, categories, purposes, actions, expiry, _ = grant_args
    assert receipt.events == [
        consent.ConsentGranted(patient, provider, patient, categories, purposes, actions, expiry, 1)
    ]
    assert receipt.sender == relayer.address
    assert as_tuple(consent.consentOf(patient, provider)) == (LABS, TREAT, 3, expiry, 1)


def test_revoke_by_sig(consent, consent_signer, patient, provider, relayer, granted, chain):
    deadline = now(chain) + 3600
    signature = consent_signer.revoke(consent, patient, provider, deadline)
    receipt = consent.revokeBySig(patient, provider, deadline, signature, sender=relayer)
    assert receipt.events == [consent.ConsentRevoked(patient, provider, patient, 2)]
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_grant_signature_replay_reverts(consent, consent_signer, grant_args, patient, relayer):
    signature = consent_signer.grant(consent, *grant_args)
    consent.grantBySig(*grant_args, signature, sender=relayer)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_revoke_signature_replay_reverts(
    consent, consent_signer, patient, provider, relayer, granted, chain
):
    deadline = now(chain) + 3600
    signature = consent_signer.revoke(consent, patient, provider, deadline)
    consent.revokeBySig(patient, provider, deadline, signature, sender=relayer)
    consent.grant(provider, LABS, TREAT, READ, granted, sender=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.revokeBySig(patient, provider, deadline, signature, sender=relayer)
    assert consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)


def test_grant_signature_replayed_after_revoke_reverts(
    consent, consent_signer, grant_args, patient, provider, relayer
):
    signature = consent_signer.grant(consent, *grant_args)
    consent.grantBySig(*grant_args, signature, sender=relayer)
    consent.revoke(provider, sender=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)
    assert as_tuple(consent.consentOf(patient, provider)) == (0, 0, 0, 0, 2)


def test_unused_signature_dies_with_any_change_of_the_pair(
    consent, consent_signer, grant_args, patient, provider, relayer
):
    """A signature held back by a relayer is void once the patient changes the pair otherwise."""
    signature = consent_signer.grant(consent, *grant_args)
    consent.grant(provider, LABS, TREAT, READ, grant_args[5], sender=patient)
    consent.revoke(provider, sender=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_signature_for_a_future_nonce_reverts(
    consent, consent_signer, grant_args, patient, relayer
):
    signature = consent_signer.grant(consent, *grant_args, nonce=1)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_signature_for_another_deployment_reverts(
    project, consent, consent_signer, grant_args, patient, deployer, relayer
):
    other = project.ConsentRegistry.deploy(sender=deployer)
    signature = consent_signer.grant(consent, *grant_args)
    with ape.reverts(other.ConsentRegistryInvalidSignature, patient=patient):
        other.grantBySig(*grant_args, signature, sender=relayer)
    # The same signature is good where it was meant to go.
    consent.grantBySig(*grant_args, signature, sender=relayer)


@pytest.mark.parametrize(
    "domain",
    [
        {"chainId": 1},
        {"chainId": "other"},
        {"name": "MedRecord ConsentRegistry v2"},
        {"version": "2"},
    ],
    ids=["mainnet", "chain-id-plus-one", "name", "version"],
)
def test_signature_for_another_domain_reverts(
    consent, consent_signer, grant_args, patient, relayer, domain, chain_id
):
    if domain.get("chainId") == "other":
        domain = {"chainId": chain_id + 1}
    signature = consent_signer.grant(consent, *grant_args, **domain)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_past_deadline_reverts(consent, consent_signer, grant_args, relayer, chain):
    timestamp = now(chain)
    grant_args[6] = deadline = timestamp - 1
    signature = consent_signer.grant(consent, *grant_args)
    with ape.reverts(consent.ConsentRegistryExpiredSignature, deadline=deadline):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_deadline_is_inclusive(consent, consent_signer, grant_args, patient, provider, relayer):
    """A signature is usable up to and including the second of its deadline (as EIP-2612)."""
    signature = consent_signer.grant(consent, *grant_args)
    ape.chain.pending_timestamp = grant_args[6]
    receipt = consent.grantBySig(*grant_args, signature, sender=relayer)
    assert receipt.timestamp == grant_args[6]
    assert consent.nonceOf(patient, provider) == 1


def test_past_deadline_revoke_reverts(
    consent, consent_signer, patient, provider, relayer, granted, chain
):
    deadline = now(chain) - 1
    signature = consent_signer.revoke(consent, patient, provider, deadline)
    with ape.reverts(consent.ConsentRegistryExpiredSignature, deadline=deadline):
        consent.revokeBySig(patient, provider, deadline, signature, sender=relayer)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, "stranger"),
        (1, "researcher"),
        (2, LABS | 1),
        (3, TREAT | 1 << 8),
        (4, READ),
        (5, "expiry+1"),
        (6, "deadline+1"),
    ],
    ids=["patient", "grantee", "categories", "purposes", "actions", "expiry", "deadline"],
)
def test_changed_field_invalidates_signature(
    consent, consent_signer, grant_args, relayer, index, value, request
):
    signature = consent_signer.grant(consent, *grant_args)
    if value in ("stranger", "researcher"):
        value = request.getfixturevalue(value)
    elif value in ("expiry+1", "deadline+1"):
        value = grant_args[index] + 1
    grant_args[index] = value
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=grant_args[0]):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_changed_grantee_invalidates_revoke_signature(
    consent, consent_signer, patient, provider, researcher, relayer, granted, chain
):
    consent.grant(researcher, LABS, TREAT, READ, granted, sender=patient)
    deadline = now(chain) + 3600
    signature = consent_signer.revoke(consent, patient, provider, deadline)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.revokeBySig(patient, researcher, deadline, signature, sender=relayer)


def test_signature_by_someone_else_reverts(
    consent, consent_signer, grant_args, patient, stranger, relayer
):
    signature = consent_signer.grant(consent, *grant_args, signer=stranger)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_guardian_signature_is_not_the_patients(
    consent, consent_signer, grant_args, patient, appointed, relayer
):
    """A guardian acts by sending transactions; its signature does not stand for the patient's."""
    signature = consent_signer.grant(consent, *grant_args, signer=appointed)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, signature, sender=relayer)


def test_revoke_signature_is_not_a_grant_signature(
    consent, consent_signer, patient, provider, relayer, granted, chain
):
    """The typehash separates the two messages even where their encodings could collide."""
    deadline = now(chain) + 3600
    signature = consent_signer.revoke(consent, patient, provider, deadline)
    args = [patient, provider, LABS, TREAT, READ, granted, deadline]
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*args, signature, sender=relayer)
    grant_signature = consent_signer.grant(consent, *args)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.revokeBySig(patient, provider, deadline, grant_signature, sender=relayer)


def _split(signature: bytes) -> tuple[int, int, int]:
    return (
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
        signature[64],
    )


def _join(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def test_high_s_signature_reverts(consent, consent_signer, grant_args, patient, relayer):
    signature = consent_signer.grant(consent, *grant_args)
    r, s, v = _split(signature)
    malleated = _join(r, SECP256K1_N - s, 55 - v)  # v: 27 <-> 28
    # The twin is a valid secp256k1 signature by the patient: only the low-s rule refuses it.
    message = {
        "patient": patient.address,
        "grantee": grant_args[1].address,
        "categories": grant_args[2],
        "purposes": grant_args[3],
        "actions": grant_args[4],
        "expiry": grant_args[5],
        "nonce": 0,
        "deadline": grant_args[6],
    }
    digest = consent_signer.grant_digest(consent, message)
    twin = eth_keys.Signature(vrs=(malleated[64] - 27, r, SECP256K1_N - s))
    assert twin.recover_public_key_from_msg_hash(digest).to_checksum_address() == patient.address
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, malleated, sender=relayer)
    # The canonical form still works.
    consent.grantBySig(*grant_args, signature, sender=relayer)


@pytest.mark.parametrize(
    "forged",
    [
        _join(0, 1, 27),  # r = 0: ecrecover returns address(0)
        _join(1, 1, 29),  # v not 27/28: ecrecover returns address(0)
        _join(0, 0, 0),
        bytes(65),
    ],
    ids=["r-zero", "bad-v", "all-zero-v0", "zero-bytes"],
)
@pytest.mark.parametrize("patient_is", ["zero", "patient"])
def test_signature_recovering_to_zero_reverts(
    consent, provider, relayer, patient, forged, patient_is, chain
):
    who = ZERO if patient_is == "zero" else patient.address
    timestamp = now(chain)
    args = [who, provider, LABS, TREAT, READ, timestamp + DAY, timestamp + 3600]
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=who):
        consent.grantBySig(*args, forged, sender=relayer)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=who):
        consent.revokeBySig(who, provider, timestamp + 3600, forged, sender=relayer)
    assert consent.nonceOf(who, provider) == 0


@pytest.mark.parametrize("length", [0, 64, 66])
def test_malformed_signature_length_reverts(
    consent, consent_signer, grant_args, patient, relayer, length
):
    signature = consent_signer.grant(consent, *grant_args)
    mangled = (signature + b"\x00")[:length]
    if length == 64:
        # EIP-2098 compact form (r, yParity|s) of the same signature: not accepted either.
        r, s, v = _split(signature)
        mangled = _join(r, s | (v - 27) << 255, 0)[:64]
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=patient):
        consent.grantBySig(*grant_args, mangled, sender=relayer)


# ------------------------------------------------------------------ ERC-1271 wallets


@pytest.fixture
def wallet(project, deployer, patient):
    """A smart-contract wallet owned by `patient`'s key."""
    return project.ERC1271WalletMock.deploy(patient, sender=deployer)


def test_erc1271_wallet_grants_and_revokes_by_sig(
    consent, consent_signer, wallet, patient, provider, relayer, chain
):
    timestamp = now(chain)
    args = [wallet, provider, LABS, TREAT, READ, timestamp + DAY, timestamp + 3600]
    signature = consent_signer.grant(consent, *args, signer=patient)
    receipt = consent.grantBySig(*args, signature, sender=relayer)
    assert receipt.events == [
        consent.ConsentGranted(wallet, provider, wallet, LABS, TREAT, READ, timestamp + DAY, 1)
    ]
    assert consent.isPermitted(wallet, provider, int(Category.LABORATORY), 0, READ)
    # The owner's key alone is not the wallet: its plain signature does not make it the patient.
    assert not consent.isPermitted(patient, provider, int(Category.LABORATORY), 0, READ)
    signature = consent_signer.revoke(consent, wallet, provider, timestamp + 3600, signer=patient)
    receipt = consent.revokeBySig(wallet, provider, timestamp + 3600, signature, sender=relayer)
    assert receipt.events == [consent.ConsentRevoked(wallet, provider, wallet, 2)]


def test_erc1271_wallet_refuses_a_signature_not_by_its_owner(
    consent, consent_signer, wallet, stranger, provider, relayer, chain
):
    timestamp = now(chain)
    args = [wallet, provider, LABS, TREAT, READ, timestamp + DAY, timestamp + 3600]
    signature = consent_signer.grant(consent, *args, signer=stranger)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=wallet):
        consent.grantBySig(*args, signature, sender=relayer)


def test_erc1271_wallet_can_act_directly(consent, wallet, patient, provider, chain):
    expiry = now(chain) + DAY
    data = consent.grant.encode_input(provider, LABS, TREAT, READ, expiry)
    receipt = wallet.execute(consent, data, sender=patient)
    assert consent.ConsentGranted(wallet, provider, wallet, LABS, TREAT, READ, expiry, 1) in (
        receipt.events
    )
    assert consent.isPermitted(wallet, provider, int(Category.LABORATORY), 0, READ)


@pytest.mark.parametrize("mode", [0, 1, 2, 3], ids=["says-no", "reverts", "short", "misplaced"])
def test_erc1271_wallet_saying_no_reverts(
    project, consent, consent_signer, deployer, patient, provider, relayer, mode, chain
):
    wallet = project.ERC1271RejectingWalletMock.deploy(mode, sender=deployer)
    timestamp = now(chain)
    args = [wallet, provider, LABS, TREAT, READ, timestamp + DAY, timestamp + 3600]
    signature = consent_signer.grant(consent, *args, signer=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=wallet):
        consent.grantBySig(*args, signature, sender=relayer)
    signature = consent_signer.revoke(consent, wallet, provider, timestamp + 3600, signer=patient)
    with ape.reverts(consent.ConsentRegistryInvalidSignature, patient=wallet):
        consent.revokeBySig(wallet, provider, timestamp + 3600, signature, sender=relayer)
