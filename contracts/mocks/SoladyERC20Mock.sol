// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "solady/tokens/ERC20.sol";

/// @notice Solady's ERC20 (permit included), the gas-optimised yardstick of bench/gas.py.
contract SoladyERC20Mock is ERC20 {
    function name() public pure override returns (string memory) {
        return "Solady";
    }

    function symbol() public pure override returns (string memory) {
        return "SLD";
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
