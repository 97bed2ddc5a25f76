// Drives Helia's UnixFS importer for the CID parity tests (tests/sdk/storage/test_helia_parity.py).
//
//   node unixfs-import.mjs --size N --seed S --cid-version 1 --raw-leaves true \
//        --chunk-size 262144 --max-links 174     @helia/unixfs addByteStream, these parameters
//   node unixfs-import.mjs --size N --seed S     @helia/unixfs addByteStream, Helia's defaults
//   node unixfs-import.mjs --size N --seed S --profile unixfs-v1-2025
//                                                ipfs-unixfs-importer's own IPIP-499 profile
//
// Prints the root CID in its version's usual form (Qm... for CIDv0). The bytes are made here,
// not piped in: N bytes of the ChaCha20 keystream of key sha256(seed) under an all-zero
// 16-byte IV (as Kubo's test fixtures and the Python side make them), so a 1 GiB file costs
// neither a pipe nor memory; blocks are hashed and dropped (a blockstore that keeps nothing).
//
// Why the profile goes to the importer, not through @helia/unixfs: addByteStream spreads its
// own defaults (CIDv1, raw leaves, 1 MiB, 1024 links) over the options, so a `profile` passed
// there cannot switch to CIDv0 or dag-pb leaves; only explicit parameters can.
import { createCipheriv, createHash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { unixfs } from '@helia/unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    seed: { type: 'string', default: '' },
    profile: { type: 'string' },
    'cid-version': { type: 'string' },
    'raw-leaves': { type: 'string' },
    'chunk-size': { type: 'string' },
    'max-links': { type: 'string' }
  }
})

async function * keystream (size, seed) {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('chacha20', key, Buffer.alloc(16))
  const zero = Buffer.alloc(1 << 20)
  let left = size
  while (left > 0) {
    const n = Math.min(left, zero.length)
    left -= n
    yield new Uint8Array(cipher.update(zero.subarray(0, n)))
  }
}

const blockstore = { put: async (cid) => cid } // hashes are all we need
const bytes = keystream(Number(values.size), values.seed)
let cid
if (values.profile !== undefined) {
  for await (const entry of importer([{ content: bytes }], blockstore, { profile: values.profile })) {
    cid = entry.cid
  }
} else {
  const options = {}
  if (values['cid-version'] !== undefined) {
    options.cidVersion = Number(values['cid-version'])
    options.rawLeaves = values['raw-leaves'] === 'true'
    options.chunker = fixedSize({ chunkSize: Number(values['chunk-size']) })
    options.layout = balanced({ maxChildrenPerNode: Number(values['max-links']) })
  }
  cid = await unixfs({ blockstore }).addByteStream(bytes, options)
}
process.stdout.write(`${cid.toString()}\n`)
