// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @notice A plain OpenZeppelin ERC20 with EIP-2612 permits: the yardstick for permit gas (bench/gas.py).
contract PermitERC20Mock is ERC20, ERC20Permit {
    constructor() ERC20("Plain Permit", "PLP") ERC20Permit("Plain Permit") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
