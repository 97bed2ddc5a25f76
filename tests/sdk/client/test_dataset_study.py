"""A whole study on Anvil with the js-ipfs node: 50 patients, 5 records each, some consents
revoked, some records erased, one key never shared. A model computes what the dataset must
hold, record by record, from what the cohort did; the dataset must hold exactly that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medrecord_sdk.client import MedRecord
from medrecord_sdk.client._dataset import SkipReason
from medrecord_sdk.fhir import StudyPseudonyms
from medrecord_sdk.storage import KuboStore
from medrecord_sdk.testing import build_cohort, make_actors
from medrecord_sdk.testing.ipfs import IpfsNode

pytestmark = [pytest.mark.anvil, pytest.mark.ipfs]

PATIENTS, RECORDS = 50, 5
REVOKED = {i for i in range(PATIENTS) if i % 10 == 3}
ERASED = {i: 1 for i in range(PATIENTS) if i % 7 == 2}  # patient -> record number erased
WITHHELD = {5: {4}}  # patient 5 never shares its record 4


def test_the_dataset_of_a_whole_study_matches_the_model(
    medrecord_anvil: MedRecord, ipfs_node: IpfsNode, tmp_path: Path
) -> None:
    anvil = medrecord_anvil
    store = KuboStore(ipfs_node.api_url, block_timeout=5.0, has_timeout=1.0, backoff=0.0)
    mr = MedRecord(anvil.w3, anvil.manifest, store, accounts=anvil.accounts,
                   keys_dir=tmp_path / "keys")  # fmt: skip
    cast = make_actors(mr)
    cohort = build_cohort(
        mr, cast.researcher, patients=PATIENTS, records_each=RECORDS, withhold=WITHHELD
    )
    for i in REVOKED:
        cohort.patients[i].patient.revoke(cast.researcher.address)
    for i, number in ERASED.items():
        member = cohort.patients[i]
        member.patient.erase(member.records[number].record_id)

    # The model: the documented precedence (record status, then consent, then the release).
    expected_written: dict[int, tuple[str, str]] = {}  # record id -> (patient, FHIR id)
    expected_skips: dict[int, SkipReason] = {}
    for member in cohort.patients:
        for number, record in enumerate(member.records):
            if ERASED.get(member.index) == number:
                expected_skips[record.record_id] = SkipReason.ERASED
            elif member.index in REVOKED:
                expected_skips[record.record_id] = SkipReason.CONSENT_LAPSED
            elif number in WITHHELD.get(member.index, set()):
                expected_skips[record.record_id] = SkipReason.KEY_NOT_SHARED
            else:
                expected_written[record.record_id] = (member.patient.address, record.resource["id"])

    dataset = cast.researcher.dataset(cohort.study_id, tmp_path / "out", parallel=4)

    assert {s.record_id: s.reason for s in dataset.skips} == expected_skips
    assert dataset.records_written == len(expected_written)
    assert dataset.patients_enrolled == PATIENTS
    assert dataset.patients_included == PATIENTS - len(REVOKED)
    assert dataset.resources == {"Observation": len(expected_written)}
    pseudonyms = StudyPseudonyms.for_study(
        cast.researcher.keypair.private_bytes, mr.chain_id, mr.escrow.address, cohort.study_id
    )
    lines = (dataset.out / "Observation.ndjson").read_text().splitlines()
    got = {(o["subject"]["reference"], o["id"]) for o in map(json.loads, lines)}
    assert got == {
        (f"Patient/{pseudonyms.patient(p)}", pseudonyms.resource(p, "Observation", fhir_id))
        for p, fhir_id in expected_written.values()
    }
    written = "\n".join(lines)
    leaked = sorted(v for v in cohort.identifying_values() if v in written)
    assert not leaked
    frame = dataset.observations()
    assert len(frame) == len(expected_written)
    assert frame["patient"].nunique() == PATIENTS - len(REVOKED)
    assert set(frame["effective_year"]) <= set(range(2015, 2025))
