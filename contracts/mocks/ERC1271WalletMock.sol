// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/**
 * @notice A smart-contract wallet (ERC-1271) with one EOA owner: it accepts exactly the hashes its
 * owner signed, the way Safe-like wallets answer for their signers. Tests use it as a patient.
 */
contract ERC1271WalletMock is IERC1271 {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return
            err == ECDSA.RecoverError.NoError && recovered == owner
                ? this.isValidSignature.selector
                : bytes4(0xffffffff);
    }

    /// @notice Lets the wallet act on-chain (a patient wallet granting or revoking directly).
    function execute(address target, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "not owner");
        (bool ok, bytes memory result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        return result;
    }
}

/**
 * @notice An ERC-1271 wallet that never accepts: depending on `mode` it answers the ERC-1271
 * "no" value, reverts, returns too few bytes, or returns the magic value in the wrong ABI
 * position. A verifier must treat every one of these as a refusal.
 */
contract ERC1271RejectingWalletMock {
    enum Mode {
        SaysNo,
        Reverts,
        ShortReturn,
        MisplacedMagic
    }

    Mode public immutable mode;

    constructor(Mode mode_) {
        mode = mode_;
    }

    fallback(bytes calldata) external returns (bytes memory) {
        if (mode == Mode.SaysNo) return abi.encode(bytes4(0xffffffff));
        if (mode == Mode.Reverts) revert("no");
        // The magic value 0x1626ba7e, but not as an ABI-encoded bytes4.
        if (mode == Mode.ShortReturn) return hex"1626ba7e";
        return abi.encode(uint256(uint32(0x1626ba7e)));
    }
}
