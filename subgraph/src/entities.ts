// The typed entities: what medrecord_sdk/index/_mapping.py projects into tables, with the
// "current state" that medrecord_sdk/index/_index.py derives at query time (a consent's latest
// event, a record's status, a study's funding, an enrollment's status) kept up to date here,
// since a subgraph answers only from stored entities. graph-node undoes reorged blocks itself.
import { BigInt, Bytes, ethereum } from "@graphprotocol/graph-ts"
import {
  ConsentGranted,
  ConsentRevoked,
  GuardianAppointed,
  GuardianRemoved,
  KeyShared,
  RecordAdded,
  RecordErased,
  RecordRetracted,
} from "../generated/RecordRegistry/RecordRegistry"
import {
  EnrollmentRejected,
  PatientEnrolled,
  PaymentFailed,
  PaymentSkipped,
  PaymentsSent,
  RewardClaimed,
  StudyCreated,
  StudyFunded,
  StudyReclaimed,
} from "../generated/StudyEscrow/StudyEscrow"
import {
  ConsentChange,
  ConsentState,
  Enrollment,
  GuardianState,
  IndexedRecord,
  KeyRelease,
  Payment,
  StudyInfo,
  StudyPatient,
} from "../generated/schema"
import { eventId, positionId, word } from "./events"

// ------------------------------------------------------------------ consents

function consentChange(
  event: ethereum.Event,
  kind: string,
  patient: Bytes,
  grantee: Bytes,
  actor: Bytes,
  categories: BigInt,
  purposes: BigInt,
  actions: i32,
  expiry: BigInt,
  nonce: BigInt,
): void {
  let change = new ConsentChange(eventId(event))
  change.kind = kind
  change.patient = patient
  change.grantee = grantee
  change.actor = actor
  change.categories = categories
  change.purposes = purposes
  change.actions = actions
  change.expiry = expiry
  change.nonce = nonce
  change.blockNumber = event.block.number
  change.logIndex = event.logIndex
  change.transactionHash = event.transaction.hash
  change.save()

  let state = new ConsentState(patient.concat(grantee))
  state.patient = patient
  state.grantee = grantee
  state.active = kind == "granted"
  state.categories = categories
  state.purposes = purposes
  state.actions = actions
  state.expiry = expiry
  state.nonce = nonce
  state.blockNumber = event.block.number
  state.logIndex = event.logIndex
  state.save()
}

export function projectConsentGranted(event: ConsentGranted): void {
  let p = event.params
  consentChange(event, "granted", p.patient, p.grantee, p.actor, p.categories, p.purposes,
    p.actions, p.expiry, p.nonce)
}

export function projectConsentRevoked(event: ConsentRevoked): void {
  let p = event.params
  // A revoke carries no terms: zeros, as the SQL index stores them.
  consentChange(event, "revoked", p.patient, p.grantee, p.actor, BigInt.zero(), BigInt.zero(),
    0, BigInt.zero(), p.nonce)
}

// ------------------------------------------------------------------ guardians

function guardian(event: ethereum.Event, patient: Bytes, who: Bytes, active: boolean): void {
  let state = new GuardianState(patient.concat(who))
  state.patient = patient
  state.guardian = who
  state.active = active
  state.blockNumber = event.block.number
  state.logIndex = event.logIndex
  state.save()
}

export function projectGuardianAppointed(event: GuardianAppointed): void {
  guardian(event, event.params.patient, event.params.guardian, true)
}

export function projectGuardianRemoved(event: GuardianRemoved): void {
  guardian(event, event.params.patient, event.params.guardian, false)
}

// ------------------------------------------------------------------ records and keys

export function projectRecordAdded(event: RecordAdded): void {
  let p = event.params
  let record = new IndexedRecord(word(p.recordId))
  record.recordId = p.recordId
  record.patient = p.patient
  record.author = p.author
  record.category = p.category
  record.cidDigest = p.cidDigest
  record.cidCodec = p.cidCodec
  record.contentHash = p.contentHash
  record.status = "active"
  record.blockNumber = event.block.number
  record.logIndex = event.logIndex
  record.transactionHash = event.transaction.hash
  if (!p.supersedes.isZero()) {
    record.supersedes = p.supersedes
    // The older version is amended unless it was retracted or erased (those win).
    let older = IndexedRecord.load(word(p.supersedes))
    if (older != null && older.status == "active") {
      older.status = "amended"
      older.save()
    }
  }
  record.save()
}

function recordStatus(recordId: BigInt, status: string): void {
  let record = IndexedRecord.load(word(recordId))
  if (record == null) return
  // Erased is final: a later retraction does not undo an erasure receipt.
  if (record.status == "erased") return
  record.status = status
  record.save()
}

export function projectRecordRetracted(event: RecordRetracted): void {
  recordStatus(event.params.recordId, "retracted")
}

export function projectRecordErased(event: RecordErased): void {
  recordStatus(event.params.recordId, "erased")
}

export function projectKeyShared(event: KeyShared): void {
  let p = event.params
  let release = new KeyRelease(eventId(event))
  release.recordId = p.recordId
  release.patient = p.patient
  release.grantee = p.grantee
  release.sharer = p.sharer
  release.wrappedKey = p.wrappedKey
  release.blockNumber = event.block.number
  release.logIndex = event.logIndex
  release.transactionHash = event.transaction.hash
  release.save()
}

// ------------------------------------------------------------------ studies

export function projectStudyCreated(event: StudyCreated): void {
  let p = event.params
  let study = new StudyInfo(word(p.studyId))
  study.studyId = p.studyId
  study.researcher = p.researcher
  study.token = p.token
  study.categories = p.categories
  study.purpose = p.purpose
  study.reward = p.reward
  study.maxParticipants = p.maxParticipants
  study.enrollmentDeadline = p.enrollmentDeadline
  study.reviewPeriod = p.reviewPeriod
  study.metadataDigest = p.metadataDigest
  study.metadataCodec = p.metadataCodec
  study.funded = BigInt.zero()
  study.blockNumber = event.block.number
  study.logIndex = event.logIndex
  study.transactionHash = event.transaction.hash
  study.save()
}

export function projectPatientEnrolled(event: PatientEnrolled): void {
  let p = event.params
  let id = eventId(event)
  let enrollment = new Enrollment(id)
  enrollment.studyId = p.studyId
  enrollment.patient = p.patient
  enrollment.actor = p.actor
  enrollment.seat = p.seat
  enrollment.status = "enrolled"
  enrollment.blockNumber = event.block.number
  enrollment.logIndex = event.logIndex
  enrollment.transactionHash = event.transaction.hash
  enrollment.save()
  let key = word(p.studyId).concat(p.patient)
  let pair = StudyPatient.load(key)
  if (pair == null) {
    pair = new StudyPatient(key)
    pair.enrollments = new Array<Bytes>()
  }
  let list = pair.enrollments
  list.push(id)
  pair.enrollments = list
  pair.save()
}

// What a payment event makes of the earlier enrollments of its (study, account), as
// _ENROLLMENT_STATUS in medrecord_sdk/index/_index.py says ("" leaves them as they are).
function settle(studyId: BigInt, account: Bytes, status: string): void {
  if (status == "") return
  let pair = StudyPatient.load(word(studyId).concat(account))
  if (pair == null) return
  let list = pair.enrollments
  for (let i = 0; i < list.length; i++) {
    let enrollment = Enrollment.load(list[i])
    if (enrollment == null) continue
    enrollment.status = status
    enrollment.save()
  }
}

function payment(
  event: ethereum.Event,
  position: i32,
  studyId: BigInt,
  kind: string,
  account: Bytes,
  amount: BigInt,
  reason: i32,
  hasReason: boolean,
): void {
  let row = new Payment(positionId(event, position))
  row.studyId = studyId
  row.kind = kind
  row.account = account
  row.amount = amount
  if (hasReason) row.reason = reason
  row.blockNumber = event.block.number
  row.logIndex = event.logIndex
  row.position = position
  row.transactionHash = event.transaction.hash
  row.save()
}

export function projectStudyFunded(event: StudyFunded): void {
  let p = event.params
  payment(event, 0, p.studyId, "funded", p.funder, p.amount, 0, false)
  let study = StudyInfo.load(word(p.studyId))
  if (study != null) {
    study.funded = study.funded.plus(p.amount)
    study.save()
  }
}

export function projectPaymentsSent(event: PaymentsSent): void {
  let p = event.params
  for (let i = 0; i < p.patients.length; i++) {
    payment(event, i, p.studyId, "paid", p.patients[i], p.amount, 0, false)
    settle(p.studyId, p.patients[i], "paid")
  }
}

export function projectPaymentFailed(event: PaymentFailed): void {
  let p = event.params
  payment(event, 0, p.studyId, "failed", p.patient, p.amount, 0, false)
  settle(p.studyId, p.patient, "owed")
}

export function projectPaymentSkipped(event: PaymentSkipped): void {
  let p = event.params
  payment(event, 0, p.studyId, "skipped", p.patient, BigInt.zero(), p.reason, true)
  // Reason 2: the consent no longer covered the study at payout.
  settle(p.studyId, p.patient, p.reason == 2 ? "forfeited" : "")
}

export function projectEnrollmentRejected(event: EnrollmentRejected): void {
  let p = event.params
  payment(event, 0, p.studyId, "rejected", p.patient, BigInt.zero(), p.reason, true)
  settle(p.studyId, p.patient, "rejected")
}

export function projectRewardClaimed(event: RewardClaimed): void {
  let p = event.params
  payment(event, 0, p.studyId, "claimed", p.patient, p.amount, 0, false)
  settle(p.studyId, p.patient, "claimed")
}

export function projectStudyReclaimed(event: StudyReclaimed): void {
  let p = event.params
  payment(event, 0, p.studyId, "reclaimed", p.researcher, p.amount, 0, false)
}
