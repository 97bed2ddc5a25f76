// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {
    AccessControlDefaultAdminRules
} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

import {IDataShareToken} from "./interfaces/IDataShareToken.sol";

/**
 * @title DataShareToken
 * @notice The data-sharing reward token: OpenZeppelin ERC20 with EIP-2612 permits, so a patient
 * or researcher without ETH can approve by signature, and role-gated minting with an optional
 * supply cap.
 * @dev The cap is checked in {mint}, the only path that creates tokens, rather than in an
 * {_update} override: transfers then run exactly OpenZeppelin's ERC20 code and cost what a plain
 * ERC20 transfer costs. The cap is immutable, so the check reads no storage.
 * The role admin can appoint and remove minters but has no power over balances.
 *
 * Administration follows OpenZeppelin's AccessControlDefaultAdminRules: exactly one
 * DEFAULT_ADMIN_ROLE holder, handed over in two steps (the admin {beginDefaultAdminTransfer}s,
 * the new admin {acceptDefaultAdminTransfer}s once {ADMIN_TRANSFER_DELAY} has passed; the admin
 * may cancel meanwhile), so a mistyped address or a stolen key cannot take the minting power at
 * once. The delay itself changes only through the same rules (OpenZeppelin's schedule).
 */
contract DataShareToken is ERC20, ERC20Permit, AccessControlDefaultAdminRules, IDataShareToken {
    /// @inheritdoc IDataShareToken
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The initial wait between the start and the acceptance of an admin transfer.
    uint48 public constant ADMIN_TRANSFER_DELAY = 2 days;

    uint256 private immutable _cap;

    /**
     * @param name_ The token name, also the EIP-712 domain name of permits.
     * @param symbol_ The token symbol.
     * @param admin Receives DEFAULT_ADMIN_ROLE and MINTER_ROLE; may appoint other minters
     * (not the zero address: OpenZeppelin's AccessControlInvalidDefaultAdmin).
     * @param cap_ The maximum total supply, or zero for no cap (deploy tools ask for it explicitly).
     */
    constructor(string memory name_, string memory symbol_, address admin, uint256 cap_)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin)
    {
        _cap = cap_;
        _grantRole(MINTER_ROLE, admin);
    }

    /// @inheritdoc IDataShareToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        if (_cap != 0) {
            uint256 increasedSupply = totalSupply() + amount;
            if (increasedSupply > _cap) revert DataShareTokenCapExceeded(increasedSupply, _cap);
        }
        _mint(to, amount);
    }

    /// @inheritdoc IDataShareToken
    function cap() external view returns (uint256) {
        return _cap;
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, IERC20Permit) returns (uint256) {
        return super.nonces(owner);
    }
}
