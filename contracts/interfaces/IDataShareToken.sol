// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/**
 * @title IDataShareToken
 * @notice The ERC-20 in which researchers reward patients for consented data. Transfers and
 * permits behave exactly like OpenZeppelin's ERC20 and ERC20Permit; what this interface adds is
 * who may create tokens and how many can ever exist.
 */
interface IDataShareToken is IERC20, IERC20Permit {
    /**
     * @notice A mint would take the total supply above the cap fixed at deployment.
     * @param increasedSupply The total supply the mint would have produced.
     * @param cap The maximum supply.
     */
    error DataShareTokenCapExceeded(uint256 increasedSupply, uint256 cap);

    /**
     * @notice Creates `amount` tokens for `to`.
     * @dev Only accounts holding {MINTER_ROLE}. Emits {IERC20-Transfer} from the zero address.
     * Reverts with {DataShareTokenCapExceeded} when a cap is set and would be passed.
     */
    function mint(address to, uint256 amount) external;

    /**
     * @notice The maximum total supply, or zero when the supply is uncapped.
     * @dev Fixed at deployment and never changed, so holders can rely on it.
     */
    function cap() external view returns (uint256);

    /// @notice The role whose holders may call {mint}.
    function MINTER_ROLE() external view returns (bytes32);
}
