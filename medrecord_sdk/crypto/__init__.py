"""Client-side encryption of medical records: envelope format v1, key wrapping, keystores.

Pure functions over the bytes, file-like objects and iterators the caller hands in; the only
I/O of its own is :func:`decrypt_file` and the keystore file functions.

The flow for one record version::

    dek = generate_data_key()                       # fresh per record version
    info = encrypt_stream(src, sink, dek, RecordContext(chain_id, registry, patient, category))
    # info.content_hash goes on-chain as contentHash
    wrapped = wrap_key(dek, grantee_public_key,
                       KeyBinding(chain_id, registry, info.content_hash, grantee_public_key))
    # wrapped goes on-chain via shareKey; the grantee:
    dek = unwrap_key(wrapped, grantee_keypair, binding)
    decrypt_stream(envelope_src, sink, dek, expected_context)

See ``medrecord_sdk/crypto/_envelope.py`` and ``docs/envelope-v1.md`` for the byte layout and
the threat model.
"""

from medrecord_sdk.crypto._envelope import (
    ALGORITHM_AES256GCM_STREAM,
    DEFAULT_CHUNK_SIZE,
    ENVELOPE_VERSION,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    DecryptInfo,
    DecryptIterator,
    EncryptIterator,
    EnvelopeHeader,
    EnvelopeInfo,
    RecordContext,
    decrypt_bytes,
    decrypt_file,
    decrypt_iter,
    decrypt_stream,
    decrypt_to_file,
    encrypt_bytes,
    encrypt_iter,
    encrypt_stream,
    generate_data_key,
    read_header,
)
from medrecord_sdk.crypto._io import Readable, Source, Writable
from medrecord_sdk.crypto._keys import LOW_ORDER_POINTS, KeyPair, validate_public_key
from medrecord_sdk.crypto._keystore import load_keystore, save_keystore
from medrecord_sdk.crypto._wrap import (
    WRAP_FORMAT_HPKE,
    WRAP_FORMAT_METAMASK,
    WRAP_FORMATS_HPKE,
    WRAP_FORMATS_METAMASK,
    KeyBinding,
    open_metamask_plaintext,
    unwrap_any,
    unwrap_key,
    unwrap_key_metamask,
    wrap_key,
    wrap_key_for,
    wrap_key_metamask,
)

__all__ = [
    "ALGORITHM_AES256GCM_STREAM",
    "DEFAULT_CHUNK_SIZE",
    "ENVELOPE_VERSION",
    "HEADER_SIZE",
    "LOW_ORDER_POINTS",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "WRAP_FORMATS_HPKE",
    "WRAP_FORMATS_METAMASK",
    "WRAP_FORMAT_HPKE",
    "WRAP_FORMAT_METAMASK",
    "DecryptInfo",
    "DecryptIterator",
    "EncryptIterator",
    "EnvelopeHeader",
    "EnvelopeInfo",
    "KeyBinding",
    "KeyPair",
    "Readable",
    "RecordContext",
    "Source",
    "Writable",
    "decrypt_bytes",
    "decrypt_file",
    "decrypt_iter",
    "decrypt_stream",
    "decrypt_to_file",
    "encrypt_bytes",
    "encrypt_iter",
    "encrypt_stream",
    "generate_data_key",
    "load_keystore",
    "open_metamask_plaintext",
    "read_header",
    "save_keystore",
    "unwrap_any",
    "unwrap_key",
    "unwrap_key_metamask",
    "validate_public_key",
    "wrap_key",
    "wrap_key_for",
    "wrap_key_metamask",
]
