// Drives MetaMask's own @metamask/eth-sig-util for the key-wrapping interop tests.
// stdin: one JSON request; stdout: one JSON answer.
//   {"op": "publicKey", "privateKey": "<hex>"}                  -> {"publicKey": "<base64>"}
//   {"op": "encrypt", "publicKey": "<base64>", "data": "<text>"} -> {"encrypted": {...}}
//   {"op": "decrypt", "privateKey": "<hex>", "encrypted": {...}} -> {"data": "<text>"}
// A library error is answered as {"error": "<message>"} (exit code 0), so a test can check it.
import { decrypt, encrypt, getEncryptionPublicKey } from '@metamask/eth-sig-util'

let input = ''
process.stdin.setEncoding('utf8')
for await (const piece of process.stdin) input += piece
const request = JSON.parse(input)
let answer
try {
  if (request.op === 'publicKey') {
    answer = { publicKey: getEncryptionPublicKey(request.privateKey) }
  } else if (request.op === 'encrypt') {
    answer = {
      encrypted: encrypt({ publicKey: request.publicKey, data: request.data, version: 'x25519-xsalsa20-poly1305' })
    }
  } else if (request.op === 'decrypt') {
    answer = { data: decrypt({ encryptedData: request.encrypted, privateKey: request.privateKey }) }
  } else {
    throw new Error(`unknown op ${request.op}`)
  }
} catch (error) {
  answer = { error: String(error && error.message ? error.message : error) }
}
process.stdout.write(JSON.stringify(answer))
process.exitCode = 0
