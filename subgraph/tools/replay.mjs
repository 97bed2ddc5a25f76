// Replays chain events through the compiled mappings (build/<source>/<source>.wasm) with the
// host functions they import implemented here, and prints the entities they stored as JSON.
//
// Why: matchstick's test runner is a binary that `graph test` downloads, and graph-node cannot
// run on this machine; this is the smallest host that runs the real WebAssembly the subgraph
// deploys. It implements exactly the imports the build has (node tools/replay.mjs lists any
// other import as an error) with graph-node's semantics: AssemblyScript objects laid out as
// graph-node lays them out (runtime "stub", so nothing is collected), BigInt as signed
// little-endian bytes, store.set replacing the entity, store.get returning a copy.
//
//   node tools/replay.mjs build events.json > entities.json
//
// events.json: [{source, handler, address, logIndex, block: {number, hash, timestamp},
//                transaction: {hash, index, from}, params: [{name, kind, value}]}]
// where kind is address | fixedbytes | bytes | uint | int | bool | string | address[] and
// value a hex string, a decimal string, a boolean or a list.
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { keccak_256 } from "@noble/hashes/sha3.js"

const [buildDir, inputPath] = process.argv.slice(2)
const events = JSON.parse(readFileSync(inputPath, "utf8"))
const store = new Map() // entity type -> Map(id -> Map(field -> {kind, value}))

const STORE = { STRING: 0, INT: 1, BIGDECIMAL: 2, BOOL: 3, ARRAY: 4, NULL: 5, BYTES: 6, BIGINT: 7, INT8: 8 }
const ETH = { ADDRESS: 0, FIXED_BYTES: 1, BYTES: 2, INT: 3, UINT: 4, BOOL: 5, STRING: 6, ARRAY: 8 }

function signedLE(n) {
  if (n < 0n) throw new Error("negative BigInt not needed by these mappings")
  const out = []
  while (n > 0n) {
    out.push(Number(n & 0xffn))
    n >>= 8n
  }
  if (out.length === 0 || out[out.length - 1] & 0x80) out.push(0)
  return Buffer.from(out)
}

function fromSignedLE(buf) {
  let n = 0n
  for (let i = buf.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(buf[i])
  if (buf.length > 0 && buf[buf.length - 1] & 0x80) n -= 1n << BigInt(8 * buf.length)
  return n
}

function runtime(instance) {
  const ex = instance.exports
  const dv = () => new DataView(ex.memory.buffer)
  const id = (name) => ex.id_of_type(ex[`TypeId.${name}`].value)
  const alloc = (size, type) => ex.__new(size, id(type))
  const rt = {
    string(p) {
      if (!p) return null
      return Buffer.from(ex.memory.buffer, p, dv().getUint32(p - 4, true)).toString("utf16le")
    },
    bytes(p) {
      const d = dv()
      return Buffer.from(new Uint8Array(ex.memory.buffer, d.getUint32(p + 4, true), d.getUint32(p + 8, true)))
    },
    array(p) {
      const d = dv()
      const start = d.getUint32(p + 4, true)
      const out = []
      for (let i = 0; i < d.getInt32(p + 12, true); i++) out.push(d.getUint32(start + 4 * i, true))
      return out
    },
    bigint(p) {
      return fromSignedLE(rt.bytes(p))
    },
    newString(s) {
      const b = Buffer.from(s, "utf16le")
      const p = alloc(b.length, "String")
      new Uint8Array(ex.memory.buffer).set(b, p)
      return p
    },
    newBytes(buf) {
      const ab = alloc(buf.length, "ArrayBuffer")
      new Uint8Array(ex.memory.buffer).set(buf, ab)
      const p = alloc(12, "Uint8Array")
      const d = dv()
      d.setUint32(p, ab, true)
      d.setUint32(p + 4, ab, true)
      d.setUint32(p + 8, buf.length, true)
      return p
    },
    newBigInt(n) {
      return rt.newBytes(signedLE(n))
    },
    newArray(ptrs, type) {
      const ab = alloc(ptrs.length * 4, "ArrayBuffer")
      let d = dv()
      ptrs.forEach((q, i) => d.setUint32(ab + 4 * i, q, true))
      const p = alloc(16, type)
      d = dv()
      d.setUint32(p, ab, true)
      d.setUint32(p + 4, ab, true)
      d.setUint32(p + 8, ptrs.length * 4, true)
      d.setInt32(p + 12, ptrs.length, true)
      return p
    },
    newObject(fields, type) {
      const p = alloc(fields.length * 4, type)
      const d = dv()
      fields.forEach((q, i) => d.setUint32(p + 4 * i, q, true))
      return p
    },
    newValue(kind, payload, type) {
      const p = alloc(16, type)
      const d = dv()
      d.setInt32(p, kind, true)
      d.setBigUint64(p + 8, BigInt(payload), true)
      return p
    },
    // --------------------------------------------------------------- store values
    readValue(p) {
      const d = dv()
      const kind = d.getInt32(p, true)
      const data = d.getBigUint64(p + 8, true)
      const q = Number(data & 0xffffffffn)
      switch (kind) {
        case STORE.STRING: return { kind, value: rt.string(q) }
        case STORE.INT: return { kind, value: Number(BigInt.asIntN(32, data)) }
        case STORE.BOOL: return { kind, value: data !== 0n }
        case STORE.ARRAY: return { kind, value: rt.array(q).map(rt.readValue) }
        case STORE.NULL: return { kind, value: null }
        case STORE.BYTES: return { kind, value: rt.bytes(q) }
        case STORE.BIGINT: return { kind, value: rt.bigint(q) }
        case STORE.INT8: return { kind, value: BigInt.asIntN(64, data) }
        default: throw new Error(`store value kind ${kind} not supported by the replay host`)
      }
    },
    writeValue(v) {
      let payload
      switch (v.kind) {
        case STORE.STRING: payload = rt.newString(v.value); break
        case STORE.INT: payload = BigInt.asUintN(64, BigInt(v.value)); break
        case STORE.BOOL: payload = v.value ? 1 : 0; break
        case STORE.ARRAY: payload = rt.newArray(v.value.map(rt.writeValue), "ArrayStoreValue"); break
        case STORE.NULL: payload = 0; break
        case STORE.BYTES: payload = rt.newBytes(v.value); break
        case STORE.BIGINT: payload = rt.newBigInt(v.value); break
        case STORE.INT8: payload = BigInt.asUintN(64, v.value); break
        default: throw new Error(`store value kind ${v.kind}`)
      }
      return rt.newValue(v.kind, payload, "StoreValue")
    },
    readEntity(p) {
      const fields = new Map()
      for (const entry of rt.array(dv().getUint32(p, true))) {
        const d = dv()
        fields.set(rt.string(d.getUint32(entry, true)), rt.readValue(d.getUint32(entry + 4, true)))
      }
      return fields
    },
    writeEntity(fields) {
      const entries = []
      for (const [key, value] of fields) {
        const k = rt.newString(key)
        const v = rt.writeValue(value)
        entries.push(rt.newObject([k, v], "TypedMapEntryStringStoreValue"))
      }
      return rt.newObject([rt.newArray(entries, "ArrayTypedMapEntryStringStoreValue")], "TypedMapStringStoreValue")
    },
    // --------------------------------------------------------------- the event
    ethValue(kind, value) {
      switch (kind) {
        case "address": return rt.newValue(ETH.ADDRESS, rt.newBytes(Buffer.from(value.slice(2), "hex")), "EthereumValue")
        case "fixedbytes": return rt.newValue(ETH.FIXED_BYTES, rt.newBytes(Buffer.from(value.slice(2), "hex")), "EthereumValue")
        case "bytes": return rt.newValue(ETH.BYTES, rt.newBytes(Buffer.from(value.slice(2), "hex")), "EthereumValue")
        case "uint": return rt.newValue(ETH.UINT, rt.newBigInt(BigInt(value)), "EthereumValue")
        case "int": return rt.newValue(ETH.INT, rt.newBigInt(BigInt(value)), "EthereumValue")
        case "bool": return rt.newValue(ETH.BOOL, value ? 1 : 0, "EthereumValue")
        case "string": return rt.newValue(ETH.STRING, rt.newString(value), "EthereumValue")
        case "address[]": {
          const items = value.map((a) => rt.ethValue("address", a))
          return rt.newValue(ETH.ARRAY, rt.newArray(items, "ArrayEthereumValue"), "EthereumValue")
        }
        default: throw new Error(`event parameter kind ${kind} not supported by the replay host`)
      }
    },
    event(e) {
      const hex = (h) => rt.newBytes(Buffer.from(h.slice(2), "hex"))
      const zero32 = () => rt.newBytes(Buffer.alloc(32))
      const big = (n) => rt.newBigInt(BigInt(n))
      const block = rt.newObject([
        hex(e.block.hash), zero32(), zero32(), rt.newBytes(Buffer.alloc(20)), zero32(), zero32(),
        zero32(), big(e.block.number), big(0), big(0), big(e.block.timestamp), big(0), big(0), 0, 0,
      ], "EthereumBlock")
      const tx = rt.newObject([
        hex(e.transaction.hash), big(e.transaction.index), hex(e.transaction.from), 0, big(0),
        big(0), big(0), rt.newBytes(Buffer.alloc(0)), big(0),
      ], "EthereumTransaction")
      const params = e.params.map((p) =>
        rt.newObject([rt.newString(p.name), rt.ethValue(p.kind, p.value)], "EventParam"))
      return rt.newObject([
        hex(e.address), big(e.logIndex), big(e.logIndex), 0, block, tx,
        rt.newArray(params, "ArrayEventParam"), 0,
      ], "EthereumEvent")
    },
  }
  return rt
}

function load(source) {
  let rt = null
  const host = {
    env: {
      abort(msg, file, line, column) {
        throw new Error(`mapping aborted: ${rt.string(msg)} at ${rt.string(file)}:${line}:${column}`)
      },
    },
    conversion: {
      "typeConversion.bytesToHex": (p) => rt.newString("0x" + rt.bytes(p).toString("hex")),
      "typeConversion.bigIntToString": (p) => rt.newString(rt.bigint(p).toString()),
      "typeConversion.bigIntToHex": (p) => rt.newString("0x" + rt.bigint(p).toString(16)),
    },
    numbers: {
      "bigInt.plus": (a, b) => rt.newBigInt(rt.bigint(a) + rt.bigint(b)),
      "bigDecimal.toString": () => {
        throw new Error("bigDecimal.toString: no BigDecimal in this schema")
      },
    },
    index: {
      "crypto.keccak256": (p) => rt.newBytes(Buffer.from(keccak_256(rt.bytes(p)))),
      "store.set": (entity, id, data) => {
        const type = rt.string(entity)
        if (!store.has(type)) store.set(type, new Map())
        store.get(type).set(rt.string(id), rt.readEntity(data))
      },
      "store.get": (entity, id) => {
        const found = store.get(rt.string(entity))?.get(rt.string(id))
        return found ? rt.writeEntity(found) : 0
      },
    },
  }
  const module = new WebAssembly.Module(readFileSync(join(buildDir, source, `${source}.wasm`)))
  for (const wanted of WebAssembly.Module.imports(module)) {
    if (!host[wanted.module]?.[wanted.name]) {
      throw new Error(`the mapping imports ${wanted.module}.${wanted.name}, which this host lacks`)
    }
  }
  const instance = new WebAssembly.Instance(module, host)
  rt = runtime(instance)
  instance.exports._start()
  return { instance, rt }
}

const sources = new Map()
for (const e of events) {
  if (!sources.has(e.source)) sources.set(e.source, load(e.source))
  const { instance, rt } = sources.get(e.source)
  const handler = instance.exports[e.handler]
  if (!handler) throw new Error(`${e.source} has no handler ${e.handler}`)
  handler(rt.event(e))
}

function plain(v) {
  switch (v.kind) {
    case STORE.BYTES: return "0x" + v.value.toString("hex")
    case STORE.BIGINT: case STORE.INT8: return v.value.toString()
    case STORE.ARRAY: return v.value.map(plain)
    default: return v.value
  }
}

const out = {}
for (const [type, rows] of store) {
  out[type] = [...rows.values()].map((fields) => Object.fromEntries([...fields].map(([k, v]) => [k, plain(v)])))
}
process.stdout.write(JSON.stringify(out))
