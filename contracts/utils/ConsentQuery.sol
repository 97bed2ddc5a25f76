// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";

/**
 * @title ConsentQuery
 * @notice The access questions StudyEscrow asks the ConsentRegistry on its hot paths (every
 * enrollment and claim), as bare staticcalls.
 * @dev The compiler's call wrapper (extcodesize-free since 0.8.10, but with its ABI encoder and
 * return-data decoder) adds about 150 gas per question. The registry is the caller's own
 * immutable contract, so anything but a well-formed `true` (a revert, short or dirty return
 * data) reads as "not permitted", and every caller then refuses.
 */
library ConsentQuery {
    /// @dev `registry.isPermittedAll(patient, grantee, categories, purposes, actions)`.
    function permitsAll(
        IConsentRegistry registry,
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions
    ) internal view returns (bool permitted) {
        bytes4 selector = IConsentRegistry.isPermittedAll.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), patient)
            mstore(add(m, 0x24), grantee)
            mstore(add(m, 0x44), categories)
            mstore(add(m, 0x64), purposes)
            mstore(add(m, 0x84), actions)
            let ok := staticcall(gas(), registry, m, 0xa4, 0x00, 0x20)
            permitted := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1)))
        }
    }

    /**
     * @dev Whether the stored terms of the pair (`registry.consentOf(patient, grantee)`) cover
     * every bit of `categories`, `purposes` and `actions`, whatever their expiry: StudyEscrow's
     * payout rule (see {IStudyEscrow-pay}). Only a change of the pair (a revoke, or a grant
     * that narrows it) can make this false for an enrollment that held a covering consent.
     */
    function termsCover(
        IConsentRegistry registry,
        address patient,
        address grantee,
        uint64 categories,
        uint32 purposes,
        uint8 actions
    ) internal view returns (bool covered) {
        bytes4 selector = IConsentRegistry.consentOf.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, selector)
            mstore(add(m, 0x04), patient)
            mstore(add(m, 0x24), grantee)
            // The answer is the five words of IConsentRegistry.Consent; the first three are the masks.
            if staticcall(gas(), registry, m, 0x44, m, 0xa0) {
                if eq(returndatasize(), 0xa0) {
                    covered := and(
                        and(
                            eq(and(mload(m), categories), categories),
                            eq(and(mload(add(m, 0x20)), purposes), purposes)
                        ),
                        eq(and(mload(add(m, 0x40)), actions), actions)
                    )
                }
            }
        }
    }
}
