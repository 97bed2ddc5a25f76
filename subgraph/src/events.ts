// The generic half of every handler: the DecodedEvent row (the SQL index's `events` and
// `event_patients` tables), and the writers the generated handlers use for the arguments'
// tagged JSON and the topics. Mirrors medrecord_sdk/index/_mapping.py (encode_args,
// event_patients) and the node's topic encoding.
import { Address, BigInt, ByteArray, Bytes, crypto, ethereum } from "@graphprotocol/graph-ts"
import { DecodedEvent, IndexTotal } from "../generated/schema"

// eventId = block number (8 bytes, big-endian) ++ log index (4 bytes) [++ position (4 bytes)]:
// ordering by id is chain order.
function hexPad(value: string, width: i32): string {
  let digits = value.startsWith("0x") ? value.slice(2) : value
  while (digits.length < width) digits = "0" + digits
  return digits
}

export function eventId(event: ethereum.Event): Bytes {
  return Bytes.fromHexString(
    "0x" + hexPad(event.block.number.toHexString(), 16) + hexPad(event.logIndex.toHexString(), 8),
  )
}

export function positionId(event: ethereum.Event, position: i32): Bytes {
  return eventId(event).concat(Bytes.fromHexString("0x" + hexPad(position.toString(16), 8)))
}

export function word(value: BigInt): Bytes {
  return Bytes.fromHexString("0x" + hexPad(value.toHexString(), 64))
}

// ------------------------------------------------------------------ tagged JSON (encode_args)

// An EIP-55 checksummed address, as the SDK's decoder writes every address.
export function checksum(address: Address): string {
  let hex = address.toHexString().slice(2).toLowerCase()
  let hash = crypto.keccak256(ByteArray.fromUTF8(hex))
  let out = "0x"
  for (let i = 0; i < 40; i++) {
    let c = hex.charAt(i)
    let byte = hash[i >> 1]
    let nibble = (i & 1) == 0 ? byte >> 4 : byte & 0x0f
    out += nibble >= 8 ? c.toUpperCase() : c
  }
  return out
}

export function jsonAddress(address: Address): string {
  return '"' + checksum(address) + '"'
}

export function jsonAddresses(addresses: Array<Address>): string {
  let out = "["
  for (let i = 0; i < addresses.length; i++) {
    if (i > 0) out += ","
    out += jsonAddress(addresses[i])
  }
  return out + "]"
}

export function jsonBool(value: boolean): string {
  return value ? "true" : "false"
}

export function jsonBytes(value: Bytes): string {
  return '{"$bytes":"' + value.toHexString().slice(2) + '"}'
}

export function jsonString(value: string): string {
  let out = '"'
  for (let i = 0; i < value.length; i++) {
    let c = value.charAt(i)
    let code = value.charCodeAt(i)
    if (c == '"' || c == "\\") out += "\\" + c
    else if (code < 0x20) out += "\\u" + hexPad(code.toString(16), 4)
    else out += c
  }
  return out + '"'
}

// ------------------------------------------------------------------ topics

export function topicAddress(address: Address): Bytes {
  return Bytes.fromHexString("0x" + hexPad(address.toHexString(), 64))
}

export function topicBytes32(value: Bytes): Bytes {
  return value
}

export function topicUint(value: BigInt): Bytes {
  return word(value)
}

export function topicI32(value: i32): Bytes {
  return word(BigInt.fromI32(value))
}

export function topicBool(value: boolean): Bytes {
  return word(BigInt.fromI32(value ? 1 : 0))
}

// ------------------------------------------------------------------ the row

export function saveDecodedEvent(
  event: ethereum.Event,
  name: string,
  topics: Array<Bytes>,
  patients: Array<Bytes>,
  recordId: BigInt | null,
  args: string,
): void {
  let row = new DecodedEvent(eventId(event))
  row.name = name
  row.contract = event.address
  row.blockNumber = event.block.number
  row.logIndex = event.logIndex
  row.blockHash = event.block.hash
  row.transactionHash = event.transaction.hash
  row.topic0 = topics[0]
  if (topics.length > 1) row.topic1 = topics[1]
  if (topics.length > 2) row.topic2 = topics[2]
  if (topics.length > 3) row.topic3 = topics[3]
  row.recordId = recordId
  // One entry per patient, in argument order (event_patients de-duplicates the same way).
  let unique = new Array<Bytes>()
  for (let i = 0; i < patients.length; i++) {
    let seen = false
    for (let j = 0; j < unique.length; j++) if (unique[j].equals(patients[i])) seen = true
    if (!seen) unique.push(patients[i])
  }
  row.patients = unique
  row.args = args
  row.save()
  let total = IndexTotal.load("medrecord")
  if (total == null) {
    total = new IndexTotal("medrecord")
    total.events = BigInt.zero()
  }
  total.events = total.events.plus(BigInt.fromI32(1))
  total.save()
}
